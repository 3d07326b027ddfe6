from django.db import migrations
from django.utils import timezone


def seed_ruleset(apps, schema_editor):
    from accounts.rules_default import DEFAULT_RULES

    RuleSet = apps.get_model("accounts", "RuleSet")
    Rule = apps.get_model("accounts", "Rule")
    if RuleSet.objects.exists():
        return
    ruleset = RuleSet.objects.create(
        version=1, is_active=True, note="DESIGN.md defaults", created_at=timezone.now()
    )
    for r in DEFAULT_RULES:
        Rule.objects.create(ruleset=ruleset, **r)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]
    operations = [migrations.RunPython(seed_ruleset, migrations.RunPython.noop)]
