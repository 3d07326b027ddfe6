from django.conf import settings
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    """The dashboard's indexes (accounts.figures). Built concurrently: a plain CREATE INDEX would block writes."""

    atomic = False

    dependencies = [
        ('appeals', '0005_model_names'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        AddIndexConcurrently(
            model_name='appeal',
            index=models.Index(fields=['submitted_at'], name='appeal_submitted_at'),
        ),
    ]
