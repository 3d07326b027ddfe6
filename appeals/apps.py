from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AppealsConfig(AppConfig):
    name = "appeals"
    verbose_name = _("Appeals")

    def ready(self) -> None:
        # Where appeals plug into accounts, which never imports them (accounts/hooks.py).
        from accounts import hooks
        from appeals import links, selectors
        from appeals.services import review

        hooks.proposal_reviewed.register(review.appeal_follow_review)
        hooks.case_panels.register(selectors.case_panels)
        hooks.borrower_link.register(links.appeal_link)
