"""Thin Celery wrappers around payments services."""

import secrets

from celery import shared_task

from payments import idempotency

_jitter = secrets.SystemRandom()


@shared_task(name="payments.purge_idempotency_records")
def purge_idempotency_records() -> int:
    """Drop Idempotency-Key records past their retention (24 h at least)."""
    return idempotency.purge_expired()


@shared_task(
    bind=True,
    name="payments.process_webhook_event",
    max_retries=8,
    acks_late=True,
)
def process_webhook_event(self, event_id: str) -> str:
    """Apply a stored gateway webhook. Transient gateway errors retry with exponential backoff
    (full jitter); after the last retry the event is marked failed for staff to retry from the admin."""
    from payments.services import webhooks

    try:
        return webhooks.webhook_process(event_id=event_id).status
    except webhooks.TransientWebhookError as exc:
        if self.request.retries >= self.max_retries or self.request.is_eager:
            webhooks.webhook_mark_failed(event_id=event_id, error=str(exc))
            return "failed"
        raise self.retry(countdown=retry_countdown(self.request.retries)) from None


def retry_countdown(retries: int, *, base: int = 30, cap: int = 3600) -> int:
    """Full-jitter exponential backoff for task retries: uniform(0, min(cap, base * 2**n)), at least 1 s."""
    return max(1, int(_jitter.uniform(0, min(cap, base * 2**retries))))


@shared_task(name="payments.settle_unknown_payments")
def settle_unknown_payments() -> dict:
    """Ask the gateways about payments whose outcome is unknown (scheduled every minute)."""
    from payments.services.settlement import settle_due_payments

    return settle_due_payments()


@shared_task(bind=True, name="payments.reconcile_yesterday", max_retries=3, acks_late=True)
def reconcile_yesterday(self, gateways: list[str] | None = None, day: str | None = None) -> dict:
    """Reconcile yesterday (in settings.TIME_ZONE) for every gateway (daily at 06:00 Lima).

    A gateway whose run failed is run again later, for the same day, up to three times.
    """
    from datetime import date

    from payments.gateways.registry import gateway_names
    from payments.services.reconciliation import ReconciliationAlreadyRunning, reconcile_day, yesterday

    the_day = date.fromisoformat(day) if day else yesterday()
    summary: dict[str, dict] = {}
    for name in gateways or gateway_names():
        try:
            run = reconcile_day(gateway=name, day=the_day)
        except ReconciliationAlreadyRunning:
            summary[name] = {"status": "already_running"}
            continue
        summary[name] = {"run": run.pk, "status": run.status, "fixed": run.fixed, "issues": run.issues}
    failed = [name for name, result in summary.items() if result["status"] == "failed"]
    if failed and not self.request.is_eager and self.request.retries < self.max_retries:
        raise self.retry(
            kwargs={"gateways": failed, "day": the_day.isoformat()},
            countdown=retry_countdown(self.request.retries, base=600),
        )
    return {"day": the_day.isoformat(), "gateways": summary}
