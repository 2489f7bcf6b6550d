"""Operations on an existing payment: capture, cancel, and asking the gateway where it stands.

The same three steps as every gateway call (see `services.payments`): claim an attempt under the
payment's row lock, call the gateway outside any lock, record the answer through the one writer
(`services.recording`). A lost answer schedules the settle job; nothing is sent again blindly.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from django.db import transaction

from payments import state
from payments.enums import AttemptOperation, AttemptOutcome, PaymentStatus
from payments.exceptions import (
    CaptureExceedsAuthorization,
    GatewayRejected,
    GatewayTimeout,
    GatewayUnavailableError,
    PaymentBusy,
)
from payments.gateways.base import (
    ChargeResult,
    CheckoutAlreadyPaid,
    GatewayError,
    GatewayOutcomeUnknown,
    GatewayUnavailable,
)
from payments.gateways.registry import get_adapter
from payments.models import Payment, PaymentAttempt
from payments.services import recording
from payments.services.attempts import OUTCOME_FROM_GATEWAY, error_outcome, finish_attempt, new_attempt
from payments.services.payments import _fail, schedule_settlement

logger = logging.getLogger("smartpay.payments")


# --- Capture and cancel -------------------------------------------------------------------------


def _claim_operation(
    payment_id: str, *, operation: str, allowed: set[str], amount: int | None = None
) -> tuple[Payment, PaymentAttempt]:
    """Step 1 for capture/cancel: lock, check the status, refuse if another call is in flight."""
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment_id)
        if payment.status not in allowed:
            raise state.InvalidTransition(f"A {payment.status} payment cannot be {operation}d.")
        if payment.attempts.filter(outcome=AttemptOutcome.STARTED).exists():
            raise PaymentBusy("Another operation on this payment is in progress; retry shortly.")
        attempt = new_attempt(payment, operation=operation, gateway=payment.gateway)
        if amount is not None:
            attempt.amount = amount
            attempt.save(update_fields=["amount"])
        return payment, attempt


def payment_capture(*, payment: Payment, amount: int | None = None) -> Payment:
    """Capture an authorized payment, in full or in part (never more than authorized)."""
    if amount is not None and amount > payment.amount:
        raise CaptureExceedsAuthorization(f"At most {payment.amount} can be captured.")
    payment, attempt = _claim_operation(
        payment.pk, operation=AttemptOperation.CAPTURE, allowed={"authorized"}, amount=amount or payment.amount
    )
    started = time.monotonic()
    try:
        result = get_adapter(payment.gateway).capture(
            payment.gateway_payment_id, amount=amount, idempotency_key=attempt.idempotency_key
        )
    except GatewayError as error:
        raise _operation_error(payment.pk, attempt, started, error) from None
    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment.pk)
        finish_attempt(attempt, outcome=OUTCOME_FROM_GATEWAY[result.status], started=started, result=result)
        # A partial capture is a capture of that amount: the gateway's captured amount is recorded.
        recording.record_charge_view(locked, result, gateway=locked.gateway, source=recording.DIRECT)
        return locked


def payment_cancel(*, payment: Payment) -> Payment:
    """Cancel a payment that has not been captured (void an authorization, drop a checkout)."""
    allowed = {"pending", "requires_action", "authorized"}
    payment, attempt = _claim_operation(payment.pk, operation=AttemptOperation.CANCEL, allowed=allowed)
    started = time.monotonic()
    if not payment.gateway_payment_id and payment.gateway_checkout_id:
        # Close the hosted session first, so the payer cannot pay it after we cancel; then ask the
        # gateway, since the payer may have paid just before: such a payment is kept and must be refunded.
        try:
            checkout_close(payment)
            seen = payment_query_gateway(payment)
        except GatewayError as error:
            raise _operation_error(payment.pk, attempt, started, error) from None
        if seen is not None:
            with transaction.atomic():
                payment = Payment.objects.select_for_update().get(pk=payment.pk)
                recording.record_charge_view(payment, seen, gateway=payment.gateway, source=recording.DIRECT)
            if payment.status not in allowed or payment.gateway_payment_id:
                finish_attempt(attempt, outcome=AttemptOutcome.INVALID, started=started)
                raise state.InvalidTransition(f"The payer already paid: the payment is {payment.status}; refund it.")
    if not payment.gateway_payment_id:
        # Nothing exists at the gateway (checkout not paid, 3-D Secure never completed).
        with transaction.atomic():
            locked = Payment.objects.select_for_update().get(pk=payment.pk)
            finish_attempt(attempt, outcome=AttemptOutcome.SUCCEEDED, started=started, gateway_called=False)
            state.move(locked, PaymentStatus.CANCELED)
            locked.next_action = None
            locked.settle_after = None
            locked.save()
            return locked
    try:
        result = get_adapter(payment.gateway).cancel(
            payment.gateway_payment_id, idempotency_key=attempt.idempotency_key
        )
    except GatewayError as error:
        raise _operation_error(payment.pk, attempt, started, error) from None
    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment.pk)
        finish_attempt(attempt, outcome=OUTCOME_FROM_GATEWAY[result.status], started=started, result=result)
        recording.record_charge_view(locked, result, gateway=locked.gateway, source=recording.DIRECT)
        return locked


def checkout_close(payment: Payment) -> None:
    """Expire a hosted checkout session at its gateway (outside any transaction), so that the payer
    cannot pay it after we give it up. A session the payer already paid is left for the caller's
    query to record; any other failure (the gateway could not be asked, or refused) is raised and
    the payment is left as it is."""
    from payments.services.checkout import checkout_expire_at_gateway

    try:
        checkout_expire_at_gateway(payment)
    except CheckoutAlreadyPaid:
        logger.info("checkout session already paid; recording the payment", extra={"payment": payment.pk})


def _operation_error(payment_id: str, attempt: PaymentAttempt, started: float, error: GatewayError) -> Exception:
    """Record a failed capture/cancel call; return the API error to raise. The status is unchanged.

    An unknown outcome (the request may have been processed) schedules the settle job, which asks
    the gateway and records what it says; the call is never repeated blindly."""
    finish_attempt(attempt, outcome=error_outcome(error), started=started, error=error)
    if isinstance(error, GatewayOutcomeUnknown):
        with transaction.atomic():
            locked = Payment.objects.select_for_update().get(pk=payment_id)
            if locked.status not in state.FINAL:
                locked.settle_checks = 0
                schedule_settlement(locked)
                locked.save(update_fields=["settle_after", "settle_checks", "updated_at"])
    if isinstance(error, GatewayUnavailable):
        return GatewayUnavailableError(
            "The gateway is unavailable; nothing changed. Retry later.",
            headers={"Retry-After": str(int(error.retry_after or 30))},
            payment=payment_id,
        )
    if isinstance(error, GatewayOutcomeUnknown):
        return GatewayTimeout(
            "The gateway did not answer in time; the payment will be brought up to date automatically.",
            payment=payment_id,
        )
    return GatewayRejected(error.message, payment=payment_id)


# --- Sync (hosted checkout return, unknown outcomes) ----------------------------------------------


def payment_query_gateway(payment: Payment) -> ChargeResult | None:
    """What the gateway knows about this payment: by its id when we have one, otherwise by the
    reference we sent (our payment id). None means the gateway proves it has no such charge.
    Read-only at the gateway; raises GatewayError when it cannot be asked."""
    adapter = get_adapter(payment.gateway)
    if payment.gateway_payment_id:
        return adapter.retrieve(payment.gateway_payment_id)
    return adapter.find_by_reference(
        payment.id,
        amount=payment.amount,
        currency=payment.currency,
        email=payment.email,
        created_after=payment.created_at - timedelta(minutes=5),
    )


def payment_record_sync(
    locked: Payment, result: ChargeResult, *, started: float, source: str = recording.SETTLEMENT
) -> str:
    """Record a gateway's answer about a payment as a `sync` attempt and apply it (the one writer).

    The caller holds the payment's row lock. Returns what `recording.record_charge_view` did;
    `locked.recorded_change` tells whether the status moved."""
    attempt = new_attempt(locked, operation=AttemptOperation.SYNC, gateway=locked.gateway)
    finish_attempt(attempt, outcome=OUTCOME_FROM_GATEWAY[result.status], started=started, result=result)
    return recording.record_charge_view(locked, result, gateway=locked.gateway, source=source)


def payment_fail(payment: Payment, *, code: str, message: str) -> None:
    """Move a locked payment to `failed` (if the status machine allows) with a reason. Saves it."""
    _fail(payment, code=code, message=message)


def payment_sync(*, payment: Payment, source: str = recording.SETTLEMENT) -> Payment:
    """Ask the gateway where this payment stands and record it. Never charges."""
    if not payment.gateway or payment.status in state.FINAL:
        return payment
    started = time.monotonic()
    try:
        result = payment_query_gateway(payment)
    except GatewayError as error:
        logger.warning("sync failed", extra={"payment": payment.pk, "error_code": error.code})
        return payment
    if result is None:
        return payment
    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment.pk)
        payment_record_sync(locked, result, started=started, source=source)
        return locked
