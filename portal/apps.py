from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = _("Borrower pages")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The case page shows what the borrower saw and did (accounts/hooks.py).
        from accounts import hooks
        from portal import selectors

        hooks.case_panels.register(selectors.case_panels)
