"""Thin Celery tasks of alerts (registered by NotificationsConfig.ready: `tasks.py` is the delivery's)."""

from celery import shared_task


@shared_task(name="notifications.evaluate_alerts")
def evaluate_alerts() -> dict:
    """Run every alert rule (beat, every minute): raise what holds, auto-resolve what cleared, and
    queue again the email of new alerts a broker outage lost. Safe to run twice at once."""
    from notifications.alert_rules import evaluate_all

    return evaluate_all()


@shared_task(name="notifications.send_alert_email")
def send_alert_email(alert_id: str) -> bool:
    """Email a new alert to ALERT_EMAILS, at most once (claims `emailed_at` first)."""
    from notifications.alerts import send_alert_email_now

    return send_alert_email_now(alert_id)
