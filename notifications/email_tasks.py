"""Thin Celery tasks of the emails to payers (registered by NotificationsConfig.ready)."""

import secrets

from celery import shared_task

_jitter = secrets.SystemRandom()


@shared_task(bind=True, name="notifications.send_payer_email", max_retries=4, acks_late=True)
def send_payer_email(self, email_id: str) -> str:
    """Send one payer email at most once (the row is claimed first). The provider not taking it
    (429/5xx, no answer) is retried with full-jitter backoff; without a broker (eager) or out of
    task retries, the row stays `pending` and `notifications.sweep_payer_emails` tries it again."""
    from notifications import emails

    try:
        return emails.email_send(email_id)
    except emails.EmailRetry:
        if self.request.is_eager or self.request.retries >= self.max_retries:
            return "retry_later"
        countdown = max(1, int(_jitter.uniform(0, min(1800, 60 * 2**self.request.retries))))
        raise self.retry(countdown=countdown) from None


@shared_task(name="notifications.sweep_payer_emails")
def sweep_payer_emails() -> dict:
    """Queue payer emails whose try is due (lost to a broker outage, or waiting their backoff)."""
    from notifications.emails import emails_sweep

    return emails_sweep()
