"""Who sent an appeal through the API (`Appeal.submitted_by`): an API token reads only the appeals it sent.

Appeals sent before this are given the user their `appeal.submit` audit event names (the API's token user; a
borrower's link names none and stays None).
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def backfill(apps, schema_editor):
    Appeal = apps.get_model("appeals", "Appeal")
    AuditEvent = apps.get_model("riskops", "AuditEvent")
    submitters = AuditEvent.objects.filter(
        action="appeal.submit", object_type="appeal", object_id=models.OuterRef("pk"), actor_user__isnull=False
    ).values("actor_user_id")[:1]
    Appeal.objects.filter(channel="api").update(submitted_by_id=models.Subquery(submitters))


class Migration(migrations.Migration):
    dependencies = [
        ("appeals", "0003_inbox_keyset_indexes"),
        ("riskops", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="appeal",
            name="submitted_by",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
