"""The one writer of gateway facts: what a gateway says about a payment, whichever path brought it.

A direct answer, a webhook, the settle job, the hosted-checkout return, reconciliation and staff
actions all learn facts about money from a gateway: a charge (taken, held, declined), a capture, a
cancel, refunds. Each of them calls `record_charge_view` (the gateway's view of a charge) or
`record_refund` (one refund) with the payment's row locked, so that:

* **facts are keyed by the gateway's ids.** The payment owns one gateway charge
  (`gateway` + `gateway_payment_id`, unique); each refund is one `Refund` row per gateway refund id
  (unique per payment). Learning a fact twice, from two paths or twice from one, finds the same row
  and changes nothing the second time, so side effects (credits, invoices, credit notes, events)
  run exactly once: they run on the row's transition, never on the report.
* **amounts are derived, never accumulated.** `amount_captured` is what the gateway captured;
  `amount_refunded` is the sum of the payment's succeeded refunds, recomputed under the lock
  (`Sum`, never `+=`), so a webhook and a direct answer for one refund cannot count it twice.
* **a view that does not fit our intent is never applied**: another currency or amount (a
  different object that shares our reference) is refused and alerted; a second charge for a
  payment that already has one, or money taken for a `failed`/`canceled` payment, becomes a
  `StrayCharge` (refunded automatically when it is a duplicate; raised for staff otherwise).
* **nothing moves backwards**: status moves go through `payments.state.move`.

Callers hold the payment's row lock (`select_for_update`) and are inside `transaction.atomic()`.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from payments import events, hooks, state
from payments.enums import AttemptOperation, PaymentStatus, RefundStatus
from payments.gateways.base import ChargeResult, ChargeStatus
from payments.models import Payment, Refund, StrayCharge

logger = logging.getLogger("smartpay.payments")
alerts = logging.getLogger("smartpay.alerts")

# Where a fact was learned (kept on attempts, refunds and stray charges for the audit).
DIRECT = "direct"
WEBHOOK = "webhook"
SETTLEMENT = "settlement"
CHECKOUT_RETURN = "checkout_return"
CONFIRM = "confirm"  # the client's confirm after 3-D Secure
RECONCILIATION = "reconciliation"
ADMIN = "admin"

# Gateway ChargeStatus -> our PaymentStatus. PENDING at the gateway (in review) is our `processing`.
STATUS_FROM_GATEWAY = {
    ChargeStatus.SUCCEEDED: PaymentStatus.SUCCEEDED,
    ChargeStatus.AUTHORIZED: PaymentStatus.AUTHORIZED,
    ChargeStatus.REQUIRES_ACTION: PaymentStatus.REQUIRES_ACTION,
    ChargeStatus.PENDING: PaymentStatus.PROCESSING,
    ChargeStatus.FAILED: PaymentStatus.FAILED,
    ChargeStatus.CANCELED: PaymentStatus.CANCELED,
    ChargeStatus.REFUNDED: PaymentStatus.REFUNDED,
    ChargeStatus.PARTIALLY_REFUNDED: PaymentStatus.PARTIALLY_REFUNDED,
}
CAPTURED = frozenset({ChargeStatus.SUCCEEDED, ChargeStatus.PARTIALLY_REFUNDED, ChargeStatus.REFUNDED})
MONEY_HELD = frozenset({ChargeStatus.SUCCEEDED, ChargeStatus.AUTHORIZED, ChargeStatus.PARTIALLY_REFUNDED})
PRE_CAPTURE = frozenset(
    {PaymentStatus.PENDING, PaymentStatus.PROCESSING, PaymentStatus.REQUIRES_ACTION, PaymentStatus.AUTHORIZED}
)
UNLISTED = ":unlisted:"  # marks a refund known only from a gateway's refunded total


class Recorded:
    """What `record_charge_view` did with a view."""

    APPLIED = "applied"  # the payment follows the gateway (perhaps nothing changed)
    MISMATCH = "mismatch"  # amount or currency differs: not applied, alerted
    STRAY = "stray"  # money at the gateway that the payment does not own: a StrayCharge
    OTHER_CHARGE = "other_charge"  # a moneyless try other than the payment's charge: nothing to record


# --- Charges --------------------------------------------------------------------------------------


def record_charge_view(payment: Payment, result: ChargeResult, *, gateway: str, source: str) -> str:
    """Bring a locked payment in line with a gateway's view of one of its charges. Saves the row.

    Returns a `Recorded` value. `payment.recorded_change` tells whether the status moved.
    """
    payment.recorded_change = False
    gateway_id = result.gateway_payment_id
    owns = _owned_charge(payment, result, gateway=gateway)
    if owns is False:
        return _other_charge(payment, result, gateway=gateway, source=source)
    if not amount_fits(payment, result):
        alerts.error(
            "a gateway object does not match the payment's amount or currency; not applied",
            extra={
                "payment": payment.pk,
                "gateway": gateway,
                "source": source,
                "their_amount": result.amount,
                "their_currency": result.currency,
            },
        )
        from notifications.alert_rules import money_mismatch_raise

        money_mismatch_raise(payment, result, gateway=gateway, source=source)  # staff's alert; never raises
        return Recorded.MISMATCH
    if payment.status in (PaymentStatus.FAILED, PaymentStatus.CANCELED) and result.status in MONEY_HELD | CAPTURED:
        if result.status == ChargeStatus.REFUNDED:
            return _other_charge(payment, result, gateway=gateway, source=source)  # given back already
        # The status machine will not reopen a final payment; the money is held all the same.
        return _stray(payment, result, gateway=gateway, source=source, reason=StrayCharge.FINAL_PAYMENT)

    target = STATUS_FROM_GATEWAY[result.status]
    checkout_decline = result.status == ChargeStatus.FAILED and checkout_open(payment)
    if gateway_id and not payment.gateway_payment_id and not checkout_decline:
        payment.gateway = gateway
        payment.gateway_payment_id = gateway_id
    if not payment.gateway:
        payment.gateway = gateway

    changed = False
    if result.status in CAPTURED:
        if payment.status in PRE_CAPTURE:
            _succeed(payment, captured=result.amount)
            changed = True
        if result.refunds or result.amount_refunded:
            payment.save()  # refunds are recorded against the saved capture
            changed = _record_listed_refunds(payment, result, source=source) or changed
    elif checkout_decline:
        # The payer may try again on the same page while the session lasts: the decline shows, the
        # payment stays pending; it fails when the session expires or is canceled.
        payment.failure_code = "card_declined"
        payment.decline_code = result.decline_code or "card_declined"
        payment.failure_message = (result.decline_message or "The card was declined.")[:300]
    else:
        changed = state.move(payment, target, strict=False)
        if changed and target == PaymentStatus.FAILED:
            payment.failure_code = "card_declined"
            payment.decline_code = result.decline_code or "card_declined"
            payment.failure_message = (result.decline_message or "The card was declined.")[:300]
        if changed and target == PaymentStatus.REQUIRES_ACTION:
            payment.next_action = dict(result.next_action or {"type": "three_d_secure"})
    if payment.status not in (PaymentStatus.REQUIRES_ACTION, PaymentStatus.PENDING):
        payment.next_action = None
    if payment.status == PaymentStatus.PROCESSING:
        schedule_settlement(payment)  # in review at the gateway: ask again later (webhooks may come first)
    elif payment.status != PaymentStatus.PENDING:
        payment.settle_after = None
    payment.save()
    payment.recorded_change = changed
    return Recorded.APPLIED


def _owned_charge(payment: Payment, result: ChargeResult, *, gateway: str) -> bool | None:
    """True: the payment's own charge; None: it has none yet (this may become it); False: another."""
    if payment.gateway_payment_id:
        return result.gateway_payment_id in (None, payment.gateway_payment_id) and gateway == payment.gateway
    if payment.gateway and gateway != payment.gateway and result.status not in MONEY_HELD | CAPTURED:
        return False  # a moneyless answer from a gateway the payment has left
    return None


def amount_fits(payment: Payment, result: ChargeResult) -> bool:
    """Does the gateway object fit our intent? Same currency, and the amount we asked for, what was
    captured, or the amount of a capture we asked for (a partial capture)."""
    if (result.currency or "").upper() != payment.currency:
        return False
    if result.amount in (payment.amount, payment.amount_captured):
        return True
    return (
        result.status in CAPTURED
        and 0 < result.amount < payment.amount
        and payment.attempts.filter(operation=AttemptOperation.CAPTURE, amount=result.amount).exists()
    )


def checkout_open(payment: Payment, *, now=None) -> bool:
    """A hosted checkout the payer can still pay: pending, with its session not yet expired."""
    return (
        payment.status == PaymentStatus.PENDING
        and bool(payment.gateway_checkout_id)
        and (payment.checkout_expires_at is None or payment.checkout_expires_at > (now or timezone.now()))
    )


def _succeed(payment: Payment, *, captured: int) -> None:
    state.move(payment, PaymentStatus.SUCCEEDED)
    payment.amount_captured = min(captured or payment.amount, payment.amount)
    payment.failure_code = payment.decline_code = payment.failure_message = ""
    payment.next_action = None
    payment.settle_after = None
    hooks.run_success_handlers(payment)


def schedule_settlement(payment: Payment, *, now=None) -> None:
    """When to ask the gateway next: 1 min, then every 5 min for the first hour, then hourly."""
    now = now or timezone.now()
    age = now - payment.created_at if payment.created_at else timedelta(0)
    if payment.settle_checks == 0:
        step = timedelta(minutes=1)
    elif age < timedelta(hours=1):
        step = timedelta(minutes=5)
    else:
        step = timedelta(hours=1)
    payment.settle_after = now + step


# --- Money the payment does not own ---------------------------------------------------------------


def _other_charge(payment: Payment, result: ChargeResult, *, gateway: str, source: str) -> str:
    if result.status in MONEY_HELD or result.status == ChargeStatus.PENDING:
        if result.status == ChargeStatus.PENDING:
            return Recorded.OTHER_CHARGE  # no money yet: its final word will come (and be recorded then)
        return _stray(payment, result, gateway=gateway, source=source, reason=StrayCharge.DUPLICATE)
    # Refunded or released: if we knew it as stray money, it is back with the payer now.
    if result.gateway_payment_id and result.status in (ChargeStatus.REFUNDED, ChargeStatus.CANCELED):
        StrayCharge.objects.filter(gateway=gateway, gateway_payment_id=result.gateway_payment_id).exclude(
            status=StrayCharge.REFUNDED
        ).update(status=StrayCharge.REFUNDED, gateway_status=result.status, updated_at=timezone.now())
    return Recorded.OTHER_CHARGE


def _stray(payment: Payment, result: ChargeResult, *, gateway: str, source: str, reason: str) -> str:
    """Record money the gateway holds for `payment` that the payment does not own (once per charge)."""
    gateway_id = result.gateway_payment_id or f"{payment.pk}:{gateway}"
    stray, created = StrayCharge.objects.get_or_create(
        gateway=gateway,
        gateway_payment_id=gateway_id,
        defaults={
            "payment": payment,
            "amount": max(1, result.amount - result.amount_refunded),
            "currency": (result.currency or payment.currency).upper(),
            "gateway_status": result.status,
            "reason": reason,
            "detected_via": source,
        },
    )
    if created:
        alerts.error(
            "a gateway holds money for a payment that does not own it",
            extra={
                "payment": payment.pk,
                "gateway": gateway,
                "stray_charge": stray.pk,
                "reason": reason,
                "payment_status": payment.status,
                "source": source,
            },
        )
        from notifications.alert_rules import stray_charge_raise

        stray_charge_raise(stray, payment_status=payment.status)  # staff's alert; never raises
        if reason == StrayCharge.DUPLICATE and settings.STRAY_CHARGE_AUTO_REFUND:
            # After commit; a broker outage leaves it `open` and the settle job's stray sweep refunds it.
            from payments.tasks import refund_stray_charge
            from smartpay.queueing import enqueue_after_commit

            enqueue_after_commit(refund_stray_charge, stray.pk)
    return Recorded.STRAY


# --- Refunds --------------------------------------------------------------------------------------


def _record_listed_refunds(payment: Payment, result: ChargeResult, *, source: str) -> bool:
    """Upsert the refunds the gateway lists on the payment's captured charge. True if any moved."""
    changed = False
    for seen in result.refunds or ():
        before = payment.amount_refunded
        record_refund(
            payment,
            gateway_refund_id=seen.gateway_refund_id,
            amount=seen.amount,
            status=seen.status,
            source=source,
            reference=seen.reference,
        )
        changed = changed or payment.amount_refunded != before
    # The gateway's refunded total is more than its list shows (or it sent no list). While refunds
    # of ours are pending, their own settlement will match them; otherwise the difference is a
    # refund made outside SmartPay, keyed by the total so that every path records it once (a later
    # list naming it by its real id adopts that row: see `record_refund`).
    unlisted = result.amount_refunded > payment.amount_refunded
    if unlisted and not payment.refunds.filter(status=RefundStatus.PENDING).exists():
        before = payment.amount_refunded
        record_refund(
            payment,
            gateway_refund_id=f"{payment.gateway_payment_id}{UNLISTED}{result.amount_refunded}",
            amount=result.amount_refunded - payment.amount_refunded,
            status=RefundStatus.SUCCEEDED,
            source=source,
        )
        changed = changed or payment.amount_refunded != before
    return changed


def record_refund(
    payment: Payment,
    *,
    gateway_refund_id: str,
    amount: int,
    status: str,
    source: str,
    reference: str | None = None,
    refund: Refund | None = None,
) -> Refund | None:
    """Record one refund as the gateway reports it; the payment's row is locked by the caller.

    The row is found by the gateway's refund id; else it is `refund` (the request whose direct
    answer this is), the refund named by `reference` (our id, echoed back), or the oldest pending
    refund of the same amount that has no gateway id yet (a lost answer); else it is a refund made
    outside SmartPay and a row with `origin=gateway` is created. Moving a row to `succeeded`
    recomputes `amount_refunded` and runs the refund handlers: once per refund, whatever the path.
    """
    rows = Refund.objects.select_for_update().filter(payment=payment)
    row = rows.filter(gateway_refund_id=gateway_refund_id).first() if gateway_refund_id else None
    if row is None and refund is not None:
        candidate = rows.get(pk=refund.pk)
        if not candidate.gateway_refund_id or UNLISTED in candidate.gateway_refund_id:
            row = candidate
    if row is None and reference:
        row = rows.filter(pk=reference, gateway_refund_id="").first()
    if row is None:
        row = (
            rows.filter(status=RefundStatus.PENDING, gateway_refund_id="", amount=amount).order_by("created_at").first()
        )
    if row is None and UNLISTED not in gateway_refund_id:
        # A refund first known only from the gateway's total, now listed under its own id.
        row = rows.filter(gateway_refund_id__contains=UNLISTED, amount=amount).order_by("created_at").first()
    if row is None:
        if status == RefundStatus.FAILED:
            return None  # a refund nobody asked for that did not happen: nothing to record
        row = Refund.objects.create(
            payment=payment,
            amount=amount,
            currency=payment.currency,
            origin=Refund.GATEWAY,
            gateway_refund_id=gateway_refund_id,
            idempotency_key=f"{payment.pk}:gateway:{gateway_refund_id}"[:80],
            created_by=f"gateway:{source}",
            reason="made at the gateway",
        )
        logger.info("refund made outside SmartPay recorded", extra={"payment": payment.pk, "refund": row.pk})

    if gateway_refund_id and row.gateway_refund_id != gateway_refund_id:
        row.gateway_refund_id = gateway_refund_id
        row.save(update_fields=["gateway_refund_id", "updated_at"])
    if row.status == RefundStatus.SUCCEEDED:
        return row  # known: no second effect
    if status == RefundStatus.SUCCEEDED:
        return _refund_succeeded(payment, row, amount=amount, source=source)
    if status == RefundStatus.FAILED:
        if row.status == RefundStatus.PENDING:
            row.status = RefundStatus.FAILED
            row.failure_code = row.failure_code or "gateway_rejected"
            row.failure_message = row.failure_message or "The gateway refused the refund; nothing was refunded."
            row.settle_after = None
            row.save()
        return row
    # Still pending at the gateway (in process): ask again later.
    if row.status == RefundStatus.PENDING and row.settle_after is None:
        row.settle_after = timezone.now() + timedelta(minutes=5)
        row.save(update_fields=["settle_after", "updated_at"])
    return row


def _refund_succeeded(payment: Payment, row: Refund, *, amount: int, source: str) -> Refund:
    others = payment.refunds.filter(status=RefundStatus.SUCCEEDED).exclude(pk=row.pk).aggregate(s=Sum("amount"))
    captured = payment.amount_captured or payment.amount
    if (others["s"] or 0) + amount > captured:
        alerts.error(
            "the gateway reports more refunded than was captured; not applied",
            extra={"payment": payment.pk, "refund": row.pk, "source": source},
        )
        return row
    if amount != row.amount:
        logger.warning(
            "refund amount differs at the gateway; the gateway's is kept",
            extra={"payment": payment.pk, "refund": row.pk, "ours": row.amount, "theirs": amount},
        )
        row.amount = amount
    row.status = RefundStatus.SUCCEEDED
    row.failure_code = row.failure_message = ""
    row.settle_after = None
    row.save()
    refresh_refunded(payment)
    row.handler_report = hooks.run_refund_handlers(payment, row)
    events.record_payment_refunded(payment, row)
    return row


def refresh_refunded(payment: Payment) -> None:
    """`amount_refunded` = the sum of succeeded refunds; the status follows. Saves the payment."""
    total = payment.refunds.filter(status=RefundStatus.SUCCEEDED).aggregate(s=Sum("amount"))["s"] or 0
    payment.amount_refunded = total
    if total > 0:
        full = total >= (payment.amount_captured or payment.amount)
        state.move(payment, PaymentStatus.REFUNDED if full else PaymentStatus.PARTIALLY_REFUNDED, strict=False)
    payment.save()
