from django.db import migrations

# Who sees the dashboard's decisions per operator: riskops.core.roles.GRANTS gives it to these roles.
READERS = ["risk_manager", "admin"]


def grant(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    view = Permission.objects.get(content_type__app_label="riskops", codename="view_operator_figures")
    for role in READERS:
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.add(view)


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    view = Permission.objects.filter(content_type__app_label="riskops", codename="view_operator_figures").first()
    if view is not None:
        for group in Group.objects.filter(name__in=READERS):
            group.permissions.remove(view)


class Migration(migrations.Migration):
    dependencies = [("riskops", "0014_daily_figures")]
    operations = [migrations.RunPython(grant, revoke)]
