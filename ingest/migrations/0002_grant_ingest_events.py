from django.db import migrations

# Who may send borrowers, lines and events (riskops.core.roles.GRANTS): upstream systems, and the risk managers
# and admins who upload files on the console's Import page.
ROLES = ["integration", "risk_manager", "admin"]


def grant(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    permission = Permission.objects.get(content_type__app_label="ingest", codename="ingest_events")
    for role in ROLES:
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.add(permission)


class Migration(migrations.Migration):
    dependencies = [("ingest", "0001_initial"), ("riskops", "0002_roles")]
    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
