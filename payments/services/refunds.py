"""Refunds: never more than what was captured, even with many refund requests at once.

Step 1 reserves the amount under the payment's row lock (a `pending` refund counts against what
is left); step 2 calls the gateway outside the transaction; step 3 records the result under the
lock again. The database also checks `amount_refunded <= amount` on the payment row.
"""

import logging

from django.db import transaction
from django.db.models import Count, Sum

from payments import hooks, state
from payments.enums import PaymentStatus, RefundStatus
from payments.exceptions import RefundExceedsPayment
from payments.gateways.base import (
    GatewayError,
    GatewayOutcomeUnknown,
    GatewayUnavailable,
    RefundRequest,
    RefundResult,
)
from payments.gateways.registry import get_adapter
from payments.models import Payment, Refund

logger = logging.getLogger("smartpay.payments")

REFUNDABLE = {PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED}


def refund_create(*, payment: Payment, amount: int | None = None, reason: str = "", actor: str = "") -> Refund:
    """Refund `amount` (default: all that is left) of a captured payment.

    Returns the refund: `succeeded`, `pending` (the gateway answered late or not at all; it is
    settled later), or `failed` (nothing was refunded, e.g. the gateway was unavailable).
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
            idempotency_key=f"{locked.id}:refund:{number}",
        )

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
        logger.warning("refund outcome unknown", extra={"refund": refund.id})
        return refund  # stays pending (reserved) until settled
    except GatewayError as error:
        return refund_record_failure(refund=refund, error=error)
    return refund_record_result(refund=refund, result=result)


def refund_record_result(*, refund: Refund, result: RefundResult) -> Refund:
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=refund.payment_id)
        refund = Refund.objects.select_for_update().get(pk=refund.pk)
        if refund.status != RefundStatus.PENDING:
            return refund  # already recorded (e.g. by a webhook)
        refund.gateway_refund_id = result.gateway_refund_id
        if result.status == "succeeded":
            refund.status = RefundStatus.SUCCEEDED
            payment.amount_refunded += refund.amount
            full = payment.amount_refunded >= payment.amount_captured
            state.move(payment, PaymentStatus.REFUNDED if full else PaymentStatus.PARTIALLY_REFUNDED)
            payment.save()
            refund.save()
            refund.handler_report = hooks.run_refund_handlers(payment, refund)
            return refund
        if result.status == "failed":
            refund.status = RefundStatus.FAILED
            refund.failure_code = "gateway_rejected"
        refund.save()
        return refund


def refund_record_failure(*, refund: Refund, error: GatewayError) -> Refund:
    with transaction.atomic():
        refund = Refund.objects.select_for_update().get(pk=refund.pk)
        refund.status = RefundStatus.FAILED
        refund.failure_code = "gateway_unavailable" if isinstance(error, GatewayUnavailable) else error.code
        refund.failure_message = error.message[:300]
        refund.save()
        return refund
