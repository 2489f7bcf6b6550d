from django.apps import AppConfig


class ReportingConfig(AppConfig):
    name = "reporting"
    verbose_name = "Reporting"

    def ready(self):
        from celery.signals import task_failure

        from reporting.prom import record_task_failure

        # Failures are counted in the shared cache, so the web process can show the workers' counts.
        task_failure.connect(record_task_failure, weak=False, dispatch_uid="reporting.celery_task_failure")

        from django.db.models.signals import post_migrate

        from reporting.roles import sync_after_migrate

        # Staff groups follow reporting/roles.py after every migrate (and flush), on any database.
        post_migrate.connect(sync_after_migrate, dispatch_uid="reporting.sync_staff_groups")

        from smartpay import staff_security

        # Logins, logouts, failures and lockouts land in the audit log (smartpay/staff_security.py).
        staff_security.connect_signals()
