"""Staff roles: the groups `finance`, `support` and `operations` with their permissions (reporting/roles.py).

Permissions are normally created after `migrate` (post_migrate), too late for a data migration on a
fresh database, so this one creates the content types and permissions of every app first (from the
historical models, which carry each model's Meta.permissions), then the groups. The post_migrate
handler in reporting/apps.py runs the same sync after every `migrate`, so later changes to the role
table reach existing databases without a new migration.
"""

from django.db import migrations


def create_staff_groups(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    from reporting.roles import sync_staff_groups

    for app_config in apps.get_app_configs():
        app_config.models_module = True  # historical app configs have none; create_permissions skips those
        create_permissions(app_config, verbosity=0, using=schema_editor.connection.alias, apps=apps)
        app_config.models_module = None
    sync_staff_groups(apps, strict=False, using=schema_editor.connection.alias)


def delete_staff_groups(apps, schema_editor):
    from reporting.roles import ROLES

    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("reporting", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("payments", "0007_staff_permissions"),
        ("billing", "0003_staff_permissions"),
        ("notifications", "0006_staff_permissions"),
        ("credits", "0002_seed_plans"),
        ("simulator", "0003_received_event"),
    ]

    operations = [migrations.RunPython(create_staff_groups, delete_staff_groups)]
