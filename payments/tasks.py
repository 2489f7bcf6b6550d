"""Thin Celery wrappers around payments services."""

from celery import shared_task

from payments import idempotency


@shared_task(name="payments.purge_idempotency_records")
def purge_idempotency_records() -> int:
    """Drop Idempotency-Key records past their retention (24 h at least)."""
    return idempotency.purge_expired()
