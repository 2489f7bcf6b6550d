"""Thin Celery wrappers around credits services (schedules in CELERY_BEAT_SCHEDULE)."""

from celery import shared_task

from credits import services


@shared_task(name="credits.expire_lots")
def expire_lots() -> int:
    """Expire lots past their `expires_at` (ledger rows + `credits.expired` events)."""
    return services.credit_lots_expire()


@shared_task(name="credits.record_expiring_notices")
def record_expiring_notices() -> int:
    """Record `credits.expiring` events for lots expiring within 7 days (once per lot)."""
    return services.credit_expiring_notices_record()


@shared_task(name="credits.run_auto_renewals")
def run_auto_renewals() -> int:
    """Settle stale purchases and queue renewals for customers still below their threshold."""
    return services.credit_auto_renewals_sweep()


@shared_task(name="credits.renew")
def renew_credits(account_id: str, reason: str) -> str | None:
    """One automatic renewal for an account, if it is still due. Returns the purchase id, if any."""
    purchase = services.credit_auto_renewal_run(account_id=account_id, reason=reason)
    return purchase.pk if purchase else None
