from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    """The reminders before a due date read the unpaid installments by day. Built concurrently: on a table of
    millions of installments a plain CREATE INDEX would block ingestion's writes while it builds."""

    atomic = False
    dependencies = [("accounts", "0022_outbox_budget_reminders")]
    operations = [
        AddIndexConcurrently(
            model_name="installment",
            index=models.Index(
                condition=models.Q(("paid_at__isnull", True)), fields=["due_date"], name="installment_unpaid_due"
            ),
        ),
    ]
