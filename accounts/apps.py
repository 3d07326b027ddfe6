from importlib import import_module

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = _("Accounts and risk engine")

    def ready(self) -> None:
        # Registers the Celery tasks in every process: services send them by name (`current_app.tasks[...]`), so
        # that they need not import the task modules that call them.
        import_module("accounts.tasks")
