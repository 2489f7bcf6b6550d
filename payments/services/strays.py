"""Stray charges: money a gateway holds for a payment that does not own it, given back.

A duplicate (a second charge for a payment that already has its own) is refunded automatically
after it is recorded; a charge for a payment that is final here waits for staff (admin action).
The refund follows the same steps as every gateway call: claim the row (`open`/`refund_failed` →
`refunding`, one conditional UPDATE, so two workers never refund one charge twice), call the
gateway outside any transaction, record the answer. A lost answer leaves it `refunding`; the
settle job then asks the gateway whether the money came back (it never sends the refund again
blindly: the gateway refuses refunding more than is left in any case).
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from payments.gateways.base import (
    ChargeStatus,
    GatewayError,
    GatewayOutcomeUnknown,
    RefundRequest,
)
from payments.gateways.registry import get_adapter
from payments.models import StrayCharge

logger = logging.getLogger("smartpay.payments")
alerts = logging.getLogger("smartpay.alerts")

REFUNDABLE = (StrayCharge.OPEN, StrayCharge.REFUND_FAILED)
LOST_ANSWER_AFTER = timedelta(minutes=5)


def stray_charge_refund(*, stray_id: str, actor: str = "system", on_claimed=None) -> StrayCharge:
    """Give a stray charge back at its gateway: void a hold, refund a capture. Idempotent.

    `on_claimed(stray, previous_status)`, if given, runs in the transaction that claims the charge
    for refunding, only when this call claimed it (the admin writes its staff audit entry there)."""
    with transaction.atomic():
        previous = StrayCharge.objects.select_for_update().filter(pk=stray_id).values_list("status", flat=True).first()
        claimed = StrayCharge.objects.filter(pk=stray_id, status__in=REFUNDABLE).update(
            status=StrayCharge.REFUNDING, resolved_by=actor[:120], last_error="", updated_at=timezone.now()
        )
        stray = StrayCharge.objects.get(pk=stray_id)
        if claimed and on_claimed is not None:
            on_claimed(stray, previous)
    if not claimed:
        return stray
    adapter = get_adapter(stray.gateway)
    try:
        current = adapter.retrieve(stray.gateway_payment_id)
        if current.status in (ChargeStatus.REFUNDED, ChargeStatus.CANCELED, ChargeStatus.FAILED):
            return _finish(stray, StrayCharge.REFUNDED, gateway_status=current.status)
        if current.status == ChargeStatus.AUTHORIZED:
            adapter.cancel(stray.gateway_payment_id, idempotency_key=f"{stray.pk}:cancel")
            return _finish(stray, StrayCharge.REFUNDED, gateway_status=ChargeStatus.CANCELED)
        left = current.amount - current.amount_refunded
        result = adapter.refund(
            RefundRequest(
                gateway_payment_id=stray.gateway_payment_id,
                amount=left,
                currency=current.currency,
                idempotency_key=f"{stray.pk}:refund",
                reason="duplicado" if stray.reason == StrayCharge.DUPLICATE else "solicitud_comprador",
                reference=stray.pk,
            )
        )
    except GatewayOutcomeUnknown as error:
        logger.warning("stray charge refund outcome unknown; asking later", extra={"stray_charge": stray.pk})
        StrayCharge.objects.filter(pk=stray.pk).update(last_error=error.message[:300], updated_at=timezone.now())
        return StrayCharge.objects.get(pk=stray.pk)
    except GatewayError as error:
        alerts.error(
            "a stray charge could not be refunded; refund it from the admin",
            extra={"stray_charge": stray.pk, "gateway": stray.gateway, "error_code": error.code},
        )
        return _finish(stray, StrayCharge.REFUND_FAILED, error=error.message)
    status = StrayCharge.REFUNDED if result.status == "succeeded" else StrayCharge.REFUNDING
    if result.status == "failed":
        status = StrayCharge.REFUND_FAILED
    return _finish(stray, status, gateway_refund_id=result.gateway_refund_id)


def _finish(stray: StrayCharge, status: str, *, gateway_status: str = "", gateway_refund_id: str = "", error=""):
    with transaction.atomic():
        row = StrayCharge.objects.select_for_update().get(pk=stray.pk)
        row.status = status
        row.gateway_status = gateway_status or row.gateway_status
        row.gateway_refund_id = gateway_refund_id or row.gateway_refund_id
        row.last_error = error[:300]
        row.save()
    logger.info("stray charge", extra={"stray_charge": row.pk, "status": status})
    return row


def retry_stray_refunds(*, now=None, limit: int = 50) -> dict[str, int]:
    """Refund duplicates whose automatic refund was never queued (broker down) and settle refunds
    whose answer was lost. Returns counts per resulting status. With `STRAY_CHARGE_AUTO_REFUND`
    off, open duplicates are left for staff (admin action), like charges for final payments."""
    now = now or timezone.now()
    counts: dict[str, int] = {}
    if settings.STRAY_CHARGE_AUTO_REFUND:
        due = StrayCharge.objects.filter(
            reason=StrayCharge.DUPLICATE, status=StrayCharge.OPEN, created_at__lte=now - timedelta(minutes=1)
        ).values_list("pk", flat=True)[:limit]
        for stray_id in list(due):
            status = stray_charge_refund(stray_id=stray_id).status
            counts[status] = counts.get(status, 0) + 1
    lost = StrayCharge.objects.filter(status=StrayCharge.REFUNDING, updated_at__lte=now - LOST_ANSWER_AFTER)
    for stray in lost[:limit]:
        try:
            current = get_adapter(stray.gateway).retrieve(stray.gateway_payment_id)
        except GatewayError:
            continue
        if current.status in (ChargeStatus.REFUNDED, ChargeStatus.CANCELED):
            _finish(stray, StrayCharge.REFUNDED, gateway_status=current.status)
            counts[StrayCharge.REFUNDED] = counts.get(StrayCharge.REFUNDED, 0) + 1
        else:
            StrayCharge.objects.filter(pk=stray.pk, status=StrayCharge.REFUNDING).update(
                status=StrayCharge.REFUND_FAILED, last_error="the refund's answer was lost and the money is still held"
            )
            stray_charge_refund(stray_id=stray.pk)  # the gateway refuses refunding more than is left
            counts["retried"] = counts.get("retried", 0) + 1
    return counts
