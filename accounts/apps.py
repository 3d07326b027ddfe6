from importlib import import_module

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and risk engine"

    def ready(self) -> None:
        # Registers the Celery tasks in every process: services send them by name (`current_app.tasks[...]`), so
        # that they need not import the task modules that call them.
        import_module("accounts.tasks")
