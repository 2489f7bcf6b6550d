from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        import notifications.push_tasks  # noqa: F401  (registers the Web Push task with Celery)
        from notifications import (  # noqa: F401  (payer emails: tasks, bounce receiver)
            alert_tasks,
            email_tasks,
            email_tracking,
        )
