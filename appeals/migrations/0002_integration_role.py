from django.db import migrations


def grant(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name="integration")
    group.permissions.add(*Permission.objects.filter(content_type__app_label="appeals", codename="submit_appeal"))


class Migration(migrations.Migration):
    dependencies = [("appeals", "0001_initial"), ("riskops", "0002_roles")]
    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
