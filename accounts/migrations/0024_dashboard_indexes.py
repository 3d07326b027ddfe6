import django.contrib.postgres.indexes
from django.conf import settings
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    """The dashboard's indexes (accounts.figures). Built concurrently: a plain CREATE INDEX would block writes."""

    atomic = False

    dependencies = [
        ('accounts', '0023_installment_unpaid_due'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        AddIndexConcurrently(
            model_name='creditline',
            index=models.Index(condition=models.Q(('status', 'active'), _negated=True), fields=['id'], name='line_not_active'),
        ),
        AddIndexConcurrently(
            model_name='case',
            index=models.Index(condition=models.Q(('status', 'resolved'), _negated=True), fields=['risk_tier', 'sla_due_at'], name='case_open_tier_sla'),
        ),
        AddIndexConcurrently(
            model_name='case',
            index=models.Index(fields=['opened_at'], name='case_opened_at'),
        ),
        AddIndexConcurrently(
            model_name='case',
            index=models.Index(condition=models.Q(('resolved_at__isnull', False)), fields=['resolved_at'], name='case_resolved_at'),
        ),
        AddIndexConcurrently(
            model_name='creditline',
            index=models.Index(condition=models.Q(('status', 'frozen')), fields=['outstanding'], name='line_frozen_outstanding'),
        ),
        AddIndexConcurrently(
            model_name='decision',
            index=django.contrib.postgres.indexes.BrinIndex(fields=['proposed_at'], name='decision_proposed_at_brin', autosummarize=True, pages_per_range=32),
        ),
        AddIndexConcurrently(
            model_name='decision',
            index=models.Index(condition=models.Q(('reviewed_at__isnull', False)), fields=['reviewed_at'], name='decision_reviewed_at'),
        ),
        AddIndexConcurrently(
            model_name='linechange',
            index=django.contrib.postgres.indexes.BrinIndex(fields=['at'], name='linechange_at_brin', autosummarize=True, pages_per_range=32),
        ),
        AddIndexConcurrently(
            model_name='signal',
            index=django.contrib.postgres.indexes.BrinIndex(fields=['fired_at'], name='signal_fired_at_brin', autosummarize=True, pages_per_range=32),
        ),
        AddIndexConcurrently(
            model_name='signal',
            index=models.Index(condition=models.Q(('status', 'overturned')), fields=['fired_at'], name='signal_overturned'),
        ),
        AddIndexConcurrently(
            model_name='signal',
            index=models.Index(condition=models.Q(('action', 'cut'), ('status', 'active')), fields=['line'], name='signal_active_cut'),
        ),
    ]
