"""Settling payments whose outcome we do not know (timeouts, crashes, reviews at the gateway).

A `processing` payment carries `settle_after`. When it is due, we ask the gateway — by its id
when we have one, otherwise by our own reference — and record what it says through the status
machine. If the gateway proves there is no charge once the give-up window has passed
(`SETTLE_GIVE_UP_HOURS`, 24 h), the payment fails with `gateway_timeout`: nothing was charged.
This job never charges; a payment is never sent to a gateway twice.
"""

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from payments.enums import AttemptOutcome, PaymentStatus
from payments.gateways.base import GatewayError
from payments.models import Payment
from payments.services.payments import (
    payment_fail,
    payment_query_gateway,
    payment_record_sync,
    schedule_settlement,
)

logger = logging.getLogger("smartpay.settlement")


def settle_due_payments(*, now=None, limit: int = 500) -> dict[str, int]:
    """Settle every processing payment whose check is due. Returns counts per result."""
    now = now or timezone.now()
    counts: dict[str, int] = {}
    due = (
        Payment.objects.filter(status=PaymentStatus.PROCESSING, settle_after__lte=now)
        .order_by("settle_after")
        .values_list("pk", flat=True)[:limit]
    )
    for payment_id in list(due):
        outcome = payment_settle(payment_id=payment_id, now=now)
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def payment_settle(*, payment_id: str, now=None) -> str:
    """Ask the gateway about one processing payment. Returns settled|pending|absent|failed|error|skipped."""
    now = now or timezone.now()
    payment = Payment.objects.get(pk=payment_id)
    if payment.status != PaymentStatus.PROCESSING or not payment.gateway:
        return "skipped"
    started = time.monotonic()
    try:
        result = payment_query_gateway(payment)
    except GatewayError as error:
        logger.warning("settle check failed", extra={"payment": payment_id, "error_code": error.code})
        _reschedule(payment_id, now)
        return "error"

    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment_id)
        if locked.status != PaymentStatus.PROCESSING:
            return "skipped"  # something else (a webhook, the late answer) got there first
        locked.settle_checks += 1
        if result is not None:
            payment_record_sync(locked, result, started=started)
            return "pending" if locked.status == PaymentStatus.PROCESSING else "settled"
        if now - locked.created_at >= timedelta(hours=settings.SETTLE_GIVE_UP_HOURS):
            locked.attempts.filter(outcome=AttemptOutcome.STARTED).update(outcome=AttemptOutcome.UNKNOWN)
            payment_fail(
                locked,
                code="gateway_timeout",
                message="The gateway never confirmed this payment and has no record of it; nothing was charged.",
            )
            return "failed"
        schedule_settlement(locked, now=now)
        locked.save(update_fields=["settle_after", "settle_checks", "updated_at"])
        return "absent"


def _reschedule(payment_id: str, now) -> None:
    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment_id)
        if locked.status == PaymentStatus.PROCESSING:
            locked.settle_checks += 1
            schedule_settlement(locked, now=now)
            locked.save(update_fields=["settle_after", "settle_checks", "updated_at"])
