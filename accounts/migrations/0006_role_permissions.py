from django.db import migrations

GRANTS = {
    "analyst": ["decide_case"],
    "senior_reviewer": ["decide_case", "approve_decision", "assign_case", "reveal_pii"],
    "risk_manager": ["decide_case", "approve_decision", "assign_case", "reveal_pii"],
    "auditor": [],
    "admin": ["decide_case", "approve_decision", "assign_case", "reveal_pii"],
}


def grant(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, codenames in GRANTS.items():
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.add(*Permission.objects.filter(content_type__app_label="accounts", codename__in=codenames))


class Migration(migrations.Migration):
    dependencies = [("accounts", "0005_case_review"), ("riskops", "0002_roles")]
    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
