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


RETRY_BASE_SECONDS = 30
RETRY_CAP_SECONDS = 3600  # the longest countdown: the broker's visibility timeout is set above it (settings)


def retry_countdown(retries: int, *, base: int = RETRY_BASE_SECONDS, cap: int = RETRY_CAP_SECONDS) -> int:
    """Full-jitter exponential backoff for task retries: uniform(0, min(cap, base * 2**n)), at least 1 s."""
    return max(1, int(_jitter.uniform(0, min(cap, base * 2**retries))))


def retry_horizon_seconds(retries: int, *, base: int = RETRY_BASE_SECONDS, cap: int = RETRY_CAP_SECONDS) -> int:
    """The longest the first `retries` countdowns of `retry_countdown` can add up to."""
    return sum(min(cap, base * 2**n) for n in range(retries))


@shared_task(name="payments.sweep_webhook_events")
def sweep_webhook_events() -> dict:
    """Queue again webhook events left `received` by a broker outage or a lost worker (every 2 minutes)."""
    from payments.services.webhooks import webhook_sweep

    return webhook_sweep()


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


@shared_task(name="payments.expire_stale_actions")
def expire_stale_actions() -> dict:
    """Fail `requires_action` (3-D Secure) payments nobody confirmed in time, after asking the gateway
    (scheduled every minute)."""
    from payments.services.confirm import expire_stale_actions as expire

    return expire()


@shared_task(bind=True, name="payments.refund_stray_charge", max_retries=5, acks_late=True)
def refund_stray_charge(self, stray_id: str) -> str:
    """Give back a second charge for a payment that already has one (see payments.services.strays)."""
    from payments.services.strays import stray_charge_refund

    return stray_charge_refund(stray_id=stray_id).status
