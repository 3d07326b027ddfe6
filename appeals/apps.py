from django.apps import AppConfig


class AppealsConfig(AppConfig):
    name = "appeals"
    verbose_name = "Appeals"

    def ready(self) -> None:
        # Where appeals plug into accounts, which never imports them (accounts/hooks.py).
        from accounts import hooks
        from appeals import links, selectors
        from appeals.services import review

        hooks.proposal_reviewed.register(review.appeal_follow_review)
        hooks.case_panels.register(selectors.case_panels)
        hooks.borrower_link.register(links.appeal_link)
