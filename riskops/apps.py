from importlib import import_module

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.utils.translation import gettext_lazy as _


class RiskopsConfig(AppConfig):
    name = "riskops"
    verbose_name = "RiskOps"

    def ready(self) -> None:
        # The jobs' tasks, registered in every process: the jobs send them by name.
        import_module("riskops.tasks")
        # Logins, failed logins, logouts and lockouts are audited (Django's and django-axes' signals).
        import_module("riskops.core.logins")
        import_module("riskops.checks")
        # Jobs plug into the queue of accounts, which never imports them (accounts/hooks.py).
        from accounts import hooks
        from riskops.jobs.actions import reevaluate_cases

        hooks.queue_actions["reevaluate"] = (_("Re-evaluate now"), reevaluate_cases)


class RiskOpsAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin, with the site that lets in administrators only (`riskops.admin_site`)."""

    default = False  # named in INSTALLED_APPS; the riskops app's own config stays RiskopsConfig

    default_site = "riskops.admin_site.RiskOpsAdminSite"
