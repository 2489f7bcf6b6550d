"""Refunds: never more than what was captured, and each refund recorded once, whoever reports it.

Step 1 reserves the amount under the payment's row lock (a `pending` refund counts against what
is left) and commits the refund row; step 2 calls the gateway outside any transaction; step 3
records the answer through the one writer (`services.recording.record_refund`), which is also what
webhooks, settlement, the checkout return and reconciliation use. So a refund webhook that arrives
before the direct answer, or a lost answer learned later, changes the refund once.

Outcomes of step 2:
* an answer: recorded (`succeeded`, `pending` at the gateway, or `failed`);
* the request provably never left (`GatewayUnavailable`): `failed`, nothing was refunded;
* the gateway refused it (`GatewayInvalidRequest`, configuration): `failed` with its reason;
* anything else after the request may have left (`GatewayOutcomeUnknown`): stays `pending`, keeps
  its amount reserved, and the settle job asks the gateway (`settle_due_refunds`). It is never sent
  again: a retry could refund twice.
"""

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Sum
from django.utils import timezone

from payments import idempotency, state
from payments.enums import PaymentStatus, RefundStatus
from payments.exceptions import RefundExceedsPayment
from payments.gateways.base import (
    GatewayError,
    GatewayOutcomeUnknown,
    GatewayUnavailable,
    RefundRequest,
)
from payments.gateways.registry import get_adapter
from payments.models import Payment, Refund
from payments.services import recording

logger = logging.getLogger("smartpay.payments")

REFUNDABLE = {PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED}


def refund_create(
    *,
    payment: Payment,
    amount: int | None = None,
    reason: str = "",
    actor: str = "",
    origin: str = Refund.API,
    on_reserved=None,
) -> Refund:
    """Refund `amount` (default: all that is left) of a captured payment.

    Returns the refund: `succeeded`, `pending` (the gateway answered late or not at all; it is
    settled later), or `failed` (nothing was refunded, e.g. the gateway was unavailable).
    `on_reserved(refund, payment)`, if given, runs inside step 1's transaction, with the payment
    locked as it was before the refund (the admin writes its staff audit entry there).
    """
    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment.pk)
        if locked.status not in REFUNDABLE:
            raise state.InvalidTransition(f"A {locked.status} payment cannot be refunded.")
        totals = locked.refunds.filter(status=RefundStatus.PENDING).aggregate(reserved=Sum("amount"))
        available = locked.refundable_amount - (totals["reserved"] or 0)
        amount = available if amount is None else amount
        if amount <= 0 or amount > available:
            raise RefundExceedsPayment(
                f"{available} {locked.currency} minor units are left to refund; {amount} was asked.",
                available=available,
            )
        number = locked.refunds.aggregate(n=Count("id"))["n"] + 1
        refund = Refund.objects.create(
            payment=locked,
            amount=amount,
            currency=locked.currency,
            reason=reason,
            created_by=actor,
            origin=origin,
            idempotency_key=f"{locked.id}:refund:{number}",
            # Should this process die before the answer is recorded, the settle job asks the gateway.
            settle_after=timezone.now() + _answer_window(),
        )
        idempotency.link(refund)
        if on_reserved is not None:
            on_reserved(refund, locked)

    try:
        result = get_adapter(locked.gateway).refund(
            RefundRequest(
                gateway_payment_id=locked.gateway_payment_id,
                amount=amount,
                currency=locked.currency,
                idempotency_key=refund.idempotency_key,
                reason=reason,
                reference=refund.id,
            )
        )
    except GatewayOutcomeUnknown:
        logger.warning("refund outcome unknown; it will be settled by asking the gateway", extra={"refund": refund.id})
        return _schedule(refund, delay=timedelta(minutes=1))
    except GatewayError as error:
        return refund_record_failure(refund=refund, error=error)
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=refund.payment_id)
        recorded = recording.record_refund(
            payment,
            gateway_refund_id=result.gateway_refund_id,
            amount=result.amount,
            status=result.status,
            source=recording.DIRECT,
            refund=refund,
        )
        row = Refund.objects.get(pk=refund.pk)
        if recorded is not None and recorded.pk == row.pk:
            row.handler_report = getattr(recorded, "handler_report", None)
        return row


def _answer_window() -> timedelta:
    return timedelta(seconds=settings.GATEWAY_CONNECT_TIMEOUT + settings.GATEWAY_READ_TIMEOUT + 60)


def _schedule(refund: Refund, *, delay: timedelta) -> Refund:
    Refund.objects.filter(pk=refund.pk, status=RefundStatus.PENDING).update(
        settle_after=timezone.now() + delay, updated_at=timezone.now()
    )
    return Refund.objects.get(pk=refund.pk)


def refund_record_failure(*, refund: Refund, error: GatewayError) -> Refund:
    """The gateway did not refund (the request never left, or it was refused): `failed`."""
    with transaction.atomic():
        refund = Refund.objects.select_for_update().get(pk=refund.pk)
        if refund.status != RefundStatus.PENDING:
            return refund  # recorded meanwhile (e.g. by a webhook): the gateway's word wins
        refund.status = RefundStatus.FAILED
        refund.failure_code = "gateway_unavailable" if isinstance(error, GatewayUnavailable) else error.code
        refund.failure_message = error.message[:300]
        refund.settle_after = None
        refund.save()
        return refund


# --- Settlement of pending refunds ----------------------------------------------------------------


def settle_due_refunds(*, now=None, limit: int = 200) -> dict[str, int]:
    """Ask the gateway about pending refunds whose check is due. Returns counts per result."""
    now = now or timezone.now()
    due = (
        Refund.objects.filter(status=RefundStatus.PENDING, settle_after__lte=now)
        .order_by("settle_after")
        .values_list("pk", flat=True)[:limit]
    )
    counts: dict[str, int] = {}
    for refund_id in list(due):
        outcome = refund_settle(refund_id=refund_id, now=now)
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def refund_settle(*, refund_id: str, now=None) -> str:
    """Ask the gateway about one pending refund; returns settled|pending|failed|error|skipped.

    The payment's charge is fetched and recorded through the one writer, which matches the
    gateway's refunds to ours (by id, by our reference, or a pending refund of the same amount).
    A refund the gateway still does not list once `SETTLE_GIVE_UP_HOURS` have passed never
    happened: it is `failed` and its amount is free again.
    """
    now = now or timezone.now()
    refund = Refund.objects.select_related("payment").get(pk=refund_id)
    if refund.status != RefundStatus.PENDING:
        return "skipped"
    payment = refund.payment
    started = time.monotonic()
    try:
        result = get_adapter(payment.gateway).retrieve(payment.gateway_payment_id)
    except GatewayError as error:
        logger.warning("refund settle check failed", extra={"refund": refund_id, "error_code": error.code})
        _reschedule(refund_id, now)
        return "error"
    from payments.services.operations import payment_record_sync

    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment.pk)
        payment_record_sync(locked, result, started=started, source=recording.SETTLEMENT)
        row = Refund.objects.select_for_update().get(pk=refund_id)
        if row.status != RefundStatus.PENDING:
            return "settled"
        listed = row.gateway_refund_id and any(
            seen.gateway_refund_id == row.gateway_refund_id for seen in result.refunds or ()
        )
        if not listed and result.refunds is not None and now - row.created_at >= _give_up():
            row.status = RefundStatus.FAILED
            row.failure_code = "gateway_timeout"
            row.failure_message = (
                "The gateway never confirmed this refund and has no record of it; nothing was refunded."
            )
            row.settle_after = None
            row.save()
            return "failed"
        row.settle_checks += 1
        row.settle_after = now + _step(row, now)
        row.save(update_fields=["settle_checks", "settle_after", "updated_at"])
        return "pending"


def _give_up() -> timedelta:
    return timedelta(hours=settings.SETTLE_GIVE_UP_HOURS)


def _step(refund: Refund, now) -> timedelta:
    if refund.settle_checks == 0:
        return timedelta(minutes=1)
    return timedelta(minutes=5) if now - refund.created_at < timedelta(hours=1) else timedelta(hours=1)


def _reschedule(refund_id: str, now) -> None:
    with transaction.atomic():
        row = Refund.objects.select_for_update().get(pk=refund_id)
        if row.status == RefundStatus.PENDING:
            row.settle_checks += 1
            row.settle_after = now + _step(row, now)
            row.save(update_fields=["settle_checks", "settle_after", "updated_at"])
