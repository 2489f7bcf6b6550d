from django.apps import AppConfig


class ReportingConfig(AppConfig):
    name = "reporting"
    verbose_name = "Reporting"

    def ready(self):
        from django.db.models.signals import post_migrate

        from reporting.roles import sync_after_migrate

        # Staff groups follow reporting/roles.py after every migrate (and flush), on any database.
        post_migrate.connect(sync_after_migrate, dispatch_uid="reporting.sync_staff_groups")
