"""Settling what we do not know yet, by asking the gateway; never by sending anything twice.

A payment carries `settle_after` when there is something to ask its gateway about:

* `processing`: a charge whose answer was lost (timeout, crash) or that is in review;
* `authorized`: a capture or cancel whose answer was lost;
* `pending` hosted checkout: its session expires at `checkout_expires_at`; then the session is
  closed at the gateway, the gateway is asked once more (the payer may have paid at the last
  moment) and an unpaid payment fails with `checkout_expired`.

When it is due, we ask the gateway (by its id when we have one, otherwise by our own reference)
and record what it says through the one writer (`services.recording`). A `processing` payment the
gateway proves absent once `SETTLE_GIVE_UP_HOURS` (24 h) have passed fails with
`gateway_timeout`: nothing was charged. Pending refunds are settled the same way
(`services.refunds.settle_due_refunds`), and stray charges whose refund was lost are retried.
This job never charges.
"""

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from payments.enums import AttemptOperation, AttemptOutcome, PaymentStatus
from payments.gateways.base import GatewayError
from payments.models import Payment
from payments.services import recording
from payments.services.operations import checkout_close, payment_fail, payment_query_gateway, payment_record_sync
from payments.services.payments import schedule_settlement

logger = logging.getLogger("smartpay.settlement")

SETTLED_STATUSES = (PaymentStatus.PROCESSING, PaymentStatus.AUTHORIZED, PaymentStatus.PENDING)


def settle_due_payments(*, now=None, limit: int = 500) -> dict[str, int]:
    """Settle every payment whose check is due, then pending refunds. Returns counts per result."""
    now = now or timezone.now()
    counts: dict[str, int] = {}
    due = (
        Payment.objects.filter(status__in=SETTLED_STATUSES, settle_after__lte=now)
        .order_by("settle_after")
        .values_list("pk", flat=True)[:limit]
    )
    for payment_id in list(due):
        outcome = payment_settle(payment_id=payment_id, now=now)
        counts[outcome] = counts.get(outcome, 0) + 1
    from payments.services.refunds import settle_due_refunds
    from payments.services.strays import retry_stray_refunds

    for outcome, count in settle_due_refunds(now=now).items():
        counts[f"refund_{outcome}"] = counts.get(f"refund_{outcome}", 0) + count
    for outcome, count in retry_stray_refunds(now=now).items():
        counts[f"stray_{outcome}"] = counts.get(f"stray_{outcome}", 0) + count
    return counts


def payment_settle(*, payment_id: str, now=None) -> str:
    """Ask the gateway about one payment. Returns settled|pending|absent|failed|expired|error|skipped."""
    now = now or timezone.now()
    payment = Payment.objects.get(pk=payment_id)
    if payment.status not in SETTLED_STATUSES or not payment.gateway:
        return "skipped"
    if payment.status == PaymentStatus.PENDING:
        return _settle_checkout(payment, now)
    started = time.monotonic()
    try:
        result = payment_query_gateway(payment)
    except GatewayError as error:
        logger.warning("settle check failed", extra={"payment": payment_id, "error_code": error.code})
        _reschedule(payment_id, now)
        return "error"

    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment_id)
        if locked.status != payment.status:
            return "skipped"  # something else (a webhook, the late answer) got there first
        locked.settle_checks += 1
        if locked.status == PaymentStatus.AUTHORIZED:
            return _settle_operation(locked, result, started)
        if result is not None:
            outcome = payment_record_sync(locked, result, started=started, source=recording.SETTLEMENT)
            if outcome == recording.Recorded.MISMATCH:
                # The gateway's object for our reference is not this payment (another amount or
                # currency): never applied; staff must look. Asking again will not change it.
                locked.settle_after = None
                locked.save(update_fields=["settle_after", "settle_checks", "updated_at"])
                return "mismatch"
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


def _settle_operation(locked: Payment, result, started: float) -> str:
    """An authorized payment whose capture or cancel answer was lost: record what the gateway says."""
    if result is not None:
        payment_record_sync(locked, result, started=started, source=recording.SETTLEMENT)
    if locked.status == PaymentStatus.AUTHORIZED:
        # The gateway still holds an authorization: the lost capture/cancel did not happen.
        lost = locked.attempts.filter(
            operation__in=(AttemptOperation.CAPTURE, AttemptOperation.CANCEL), outcome=AttemptOutcome.UNKNOWN
        )
        lost.update(error_message="the gateway shows no effect of this call", outcome=AttemptOutcome.DECLINED)
        locked.settle_after = None
        locked.save(update_fields=["settle_after", "settle_checks", "updated_at"])
        return "absent"
    return "settled"


def _settle_checkout(payment: Payment, now) -> str:
    """A hosted checkout whose session is due: still open → look again later; expired → close it
    at the gateway, ask once more, and fail the payment if the payer did not pay."""
    expired = payment.checkout_expires_at is not None and payment.checkout_expires_at <= now
    started = time.monotonic()
    try:
        if expired:
            checkout_close(payment)
        result = payment_query_gateway(payment)
    except GatewayError as error:
        logger.warning("checkout settle check failed", extra={"payment": payment.pk, "error_code": error.code})
        _reschedule(payment.pk, now)
        return "error"
    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment.pk)
        if locked.status != PaymentStatus.PENDING:
            return "skipped"
        locked.settle_checks += 1
        if result is not None:
            payment_record_sync(locked, result, started=started, source=recording.SETTLEMENT)
            if locked.status != PaymentStatus.PENDING:
                return "settled"
        if expired:
            payment_fail(
                locked,
                code="checkout_expired",
                message="The hosted checkout session expired before the payer paid; nothing was charged.",
            )
            return "expired"
        locked.settle_after = locked.checkout_expires_at
        locked.save(update_fields=["settle_after", "settle_checks", "updated_at"])
        return "pending"


def _reschedule(payment_id: str, now) -> None:
    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment_id)
        if locked.status in SETTLED_STATUSES:
            locked.settle_checks += 1
            schedule_settlement(locked, now=now)
            locked.save(update_fields=["settle_after", "settle_checks", "updated_at"])
