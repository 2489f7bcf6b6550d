"""Payments: create (token, saved card, hosted checkout), capture, cancel, and gateway results.

Every gateway call follows the same three steps, so a crash anywhere leaves a row that can be
settled and never a second charge:

1. commit the intent: the payment and an attempt row (status `started`) in one transaction;
2. call the gateway outside any transaction or lock, with a key derived from the attempt row;
3. record the result in a new transaction with the payment row locked (`select_for_update`),
   moving the status only through `payments.state.move`.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from payments import breaker, idempotency, routing, state
from payments.enums import AttemptOperation, AttemptOutcome, PaymentPurpose, PaymentStatus
from payments.exceptions import (
    CaptureExceedsAuthorization,
    CurrencyNotSupported,
    GatewayRejected,
    GatewayTimeout,
    GatewayUnavailableError,
    PaymentBusy,
)
from payments.gateways.base import (
    ChargeRequest,
    ChargeResult,
    ChargeStatus,
    CheckoutAlreadyPaid,
    CheckoutRequest,
    GatewayConfigurationError,
    GatewayError,
    GatewayInvalidRequest,
    GatewayOutcomeUnknown,
    GatewayUnavailable,
    SavedCardRef,
)
from payments.gateways.registry import get_adapter
from payments.models import ClientApp, Customer, Payment, PaymentAttempt, PaymentMethod
from payments.services import recording

logger = logging.getLogger("smartpay.payments")

_OUTCOME_FROM_GATEWAY = {
    ChargeStatus.SUCCEEDED: AttemptOutcome.SUCCEEDED,
    ChargeStatus.AUTHORIZED: AttemptOutcome.AUTHORIZED,
    ChargeStatus.REQUIRES_ACTION: AttemptOutcome.REQUIRES_ACTION,
    ChargeStatus.PENDING: AttemptOutcome.PENDING,
    ChargeStatus.FAILED: AttemptOutcome.DECLINED,
    ChargeStatus.CANCELED: AttemptOutcome.SUCCEEDED,
    ChargeStatus.REFUNDED: AttemptOutcome.SUCCEEDED,
    ChargeStatus.PARTIALLY_REFUNDED: AttemptOutcome.SUCCEEDED,
}


@dataclass(frozen=True)
class CardSource:
    """A single-use card token from a gateway's client-side tokenization."""

    gateway: str
    token: str
    payment_method_id: str | None = None
    issuer_id: str | None = None
    installments: int = 1


# --- Attempts -------------------------------------------------------------------------------------


def _new_attempt(payment: Payment, *, operation: str, gateway: str, first: bool = False) -> PaymentAttempt:
    """Create the next attempt row. The caller holds the payment's row lock (or just created it)."""
    number = 1 if first else (payment.attempts.aggregate(n=Max("number"))["n"] or 0) + 1
    return PaymentAttempt.objects.create(
        payment=payment,
        number=number,
        operation=operation,
        gateway=gateway,
        idempotency_key=f"{payment.id}:{operation}:{number}",
    )


def _finish_attempt(
    attempt: PaymentAttempt, *, outcome: str, started: float, result=None, error=None, gateway_called: bool = True
) -> None:
    """Close an attempt row. The gateway's breaker hears only of calls that reached it (or failed to):
    a local step (canceling what never reached the gateway) says nothing about the gateway's health."""
    attempt.outcome = outcome
    attempt.duration_ms = int((time.monotonic() - started) * 1000)
    attempt.finished_at = timezone.now()
    if result is not None:
        attempt.gateway_payment_id = result.gateway_payment_id or ""
        attempt.error_code = result.decline_code or ""
        attempt.error_message = (result.decline_message or "")[:300]
        attempt.raw_response = dict(result.raw) if result.raw else None
    if error is not None:
        attempt.error_code = error.code
        attempt.error_message = error.message[:300]
        attempt.http_status = error.http_status
    attempt.save()
    if gateway_called and (attempt.operation != AttemptOperation.SYNC or outcome in breaker.FAILURE_OUTCOMES):
        breaker.record(attempt.gateway, outcome, since=attempt.created_at)


def _retry_attempt(payment_id: str, previous: PaymentAttempt) -> PaymentAttempt:
    """A new row for a retry of the same logical call: same gateway, same idempotency key."""
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment_id)
        number = (payment.attempts.aggregate(n=Max("number"))["n"] or 0) + 1
        return PaymentAttempt.objects.create(
            payment=payment,
            number=number,
            operation=previous.operation,
            gateway=previous.gateway,
            idempotency_key=previous.idempotency_key,
            retry=previous.retry + 1,
        )


_jitter = secrets.SystemRandom()


def backoff_delay(try_index: int, retry_after: float | None) -> float:
    """Full-jitter exponential backoff; a gateway's Retry-After is a floor."""
    ceiling = settings.GATEWAY_RETRY_BASE_SECONDS * (2**try_index)
    delay = _jitter.uniform(0, ceiling)
    return max(delay, retry_after or 0.0)


def _call_gateway(payment_id: str, attempt: PaymentAttempt, call: Callable[[str], object]):
    """Step 2, with bounded retries (same gateway, same idempotency key) of the errors safe to retry.

    Returns (attempt, started, result, error) for the last try.

    * `GatewayUnavailable` proves the request was not processed: retried.
    * `GatewayOutcomeUnknown` may have been processed: retried only at a gateway that honours
      idempotency keys (Mercado Pago replays the first answer for a repeated key, so a resend cannot
      charge twice); anywhere else (Culqi) it is returned at once, to be settled by asking the gateway.
      Once a try was unknown the call stays unknown unless a later try brings an answer: a later
      "unavailable" only proves that *that* try was not processed, so it must not let the caller fail over.
    * Declines, invalid requests and configuration errors never are.

    Nothing here fails over: the caller does, and only after `GatewayUnavailable`.
    """
    deadline = time.monotonic() + settings.GATEWAY_RETRY_MAX_TOTAL_SECONDS
    tries = max(1, settings.GATEWAY_RETRY_MAX_TRIES)
    resend_unknown = get_adapter(attempt.gateway).honours_idempotency_keys
    unknown: GatewayOutcomeUnknown | None = None
    for try_index in range(tries):
        if try_index > 0:
            attempt = _retry_attempt(payment_id, attempt)
        started = time.monotonic()
        try:
            return attempt, started, call(attempt.idempotency_key), None
        except (GatewayUnavailable, GatewayOutcomeUnknown) as error:
            if isinstance(error, GatewayOutcomeUnknown):
                if not resend_unknown:
                    return attempt, started, None, error
                unknown = error
            delay = backoff_delay(try_index, error.retry_after)
            last_try = try_index + 1 >= tries or time.monotonic() + delay > deadline
            if last_try or breaker.state(attempt.gateway).state == breaker.OPEN:
                return attempt, started, None, unknown or error
            _finish_attempt(attempt, outcome=_error_outcome(error), started=started, error=error)
            logger.info("retrying gateway call", extra={"gateway": attempt.gateway, "delay_ms": int(delay * 1000)})
            time.sleep(delay)
        except GatewayError as error:
            return attempt, started, None, unknown or error
    raise AssertionError("unreachable")  # pragma: no cover


def _error_outcome(error: GatewayError) -> str:
    if isinstance(error, GatewayUnavailable):
        return AttemptOutcome.UNAVAILABLE
    if isinstance(error, GatewayOutcomeUnknown):
        return AttemptOutcome.UNKNOWN
    if isinstance(error, GatewayInvalidRequest):
        return AttemptOutcome.INVALID
    return AttemptOutcome.ERROR


# --- Applying what a gateway says ----------------------------------------------------------------


def payment_apply_gateway_result(
    payment: Payment, result: ChargeResult, *, gateway: str, source: str = recording.DIRECT
) -> bool:
    """Record a gateway's view of a locked payment through the one writer (`services.recording`).

    Returns True when the status changed. Kept for callers that only care about that; callers that
    must react to a refused view (mismatch, stray money) call `recording.record_charge_view`.
    """
    recording.record_charge_view(payment, result, gateway=gateway, source=source)
    return payment.recorded_change


schedule_settlement = recording.schedule_settlement


def _fail(payment: Payment, *, code: str, message: str) -> None:
    if state.move(payment, PaymentStatus.FAILED, strict=False):
        payment.failure_code = code
        payment.failure_message = message[:300]
        payment.next_action = None
        payment.settle_after = None
    payment.save()


def _record_charge(payment_id: str, attempt: PaymentAttempt, started: float, *, result=None, error=None, final=True):
    """Step 3: record a charge/checkout answer with the payment row locked."""
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment_id)
        if result is not None:
            outcome = _OUTCOME_FROM_GATEWAY[result.status]
            _finish_attempt(attempt, outcome=outcome, started=started, result=result)
            recording.record_charge_view(payment, result, gateway=attempt.gateway, source=recording.DIRECT)
        else:
            _finish_attempt(attempt, outcome=_error_outcome(error), started=started, error=error)
            if isinstance(error, GatewayOutcomeUnknown):
                # It may have been charged: stays `processing` until the gateway is asked.
                payment.gateway = attempt.gateway
                schedule_settlement(payment)
                payment.save()
            elif final:
                if isinstance(error, GatewayUnavailable):
                    _fail(
                        payment, code="gateway_unavailable", message="The gateway is unavailable; nothing was charged."
                    )
                elif isinstance(error, GatewayConfigurationError):
                    logger.error("gateway configuration error", extra={"gateway": attempt.gateway})
                    _fail(payment, code="gateway_configuration_error", message="The gateway refused our credentials.")
                else:
                    _fail(payment, code="invalid_request", message=error.message)
        return payment


# --- Create -----------------------------------------------------------------------------------------


def payment_create(
    *,
    client_app: ClientApp,
    amount: int,
    currency: str,
    email: str = "",
    customer: Customer | None = None,
    description: str = "",
    metadata: dict | None = None,
    capture: bool = True,
    source: CardSource | None = None,
    payment_method: PaymentMethod | None = None,
    checkout: bool = False,
    return_url: str = "",
    purpose: str = PaymentPurpose.GENERIC,
) -> Payment:
    """Create a payment and charge it (token or saved card) or open a hosted checkout.

    Invariants: one gateway charge per attempt row, at most one successful charge per payment
    (failover happens only after `unavailable`, which proves nothing was processed; never after an
    unknown outcome). Declines are results, not errors.
    """
    if sum(bool(x) for x in (source, payment_method, checkout)) != 1:
        raise ValueError("exactly one of source, payment_method or checkout")
    plan = _plan_gateways(currency=currency, amount=amount, source=source, payment_method=payment_method)
    email = email or (customer.email if customer else "")
    source_details = {}
    if source:
        source_details = {
            k: v
            for k, v in {
                "payment_method_id": source.payment_method_id,
                "issuer_id": source.issuer_id,
                "installments": source.installments,
            }.items()
            if v
        }

    expires_at = timezone.now() + timedelta(hours=settings.CHECKOUT_SESSION_HOURS) if checkout else None
    with transaction.atomic():
        payment = Payment.objects.create(
            client_app=client_app,
            customer=customer,
            payment_method=payment_method,
            status=PaymentStatus.PENDING if checkout else PaymentStatus.PROCESSING,
            amount=amount,
            currency=currency,
            capture=capture,
            email=email,
            description=description,
            metadata=metadata or {},
            purpose=purpose,
            return_url=return_url,
            source_details=source_details,
            gateway=plan[0],
            # Until an answer is recorded, a crash anywhere leaves this for the settle job to finish;
            # a checkout is looked at again when its session expires.
            settle_after=expires_at if checkout else timezone.now() + _answer_window(),
            checkout_expires_at=expires_at,
        )
        idempotency.link(payment)
        attempt = _new_attempt(
            payment,
            operation=AttemptOperation.CHECKOUT if checkout else AttemptOperation.CHARGE,
            gateway=plan[0],
            first=True,
        )

    for index, gateway in enumerate(plan):
        if source is None and not breaker.allow_request(gateway):
            # Its half-open probe went to another request meanwhile: nothing was sent, try the next.
            attempt.error_message = "not called: the gateway's breaker let another request probe it"
            _finish_attempt(attempt, outcome=AttemptOutcome.UNAVAILABLE, started=time.monotonic(), gateway_called=False)
            if index == len(plan) - 1:
                with transaction.atomic():
                    locked = Payment.objects.select_for_update().get(pk=payment.pk)
                    _fail(
                        locked, code="gateway_unavailable", message="The gateway is unavailable; nothing was charged."
                    )
                raise _unavailable(gateway, currency, payment=payment.pk)
            continue
        if index > 0:
            with transaction.atomic():
                locked = Payment.objects.select_for_update().get(pk=payment.pk)
                locked.gateway = gateway
                locked.save(update_fields=["gateway", "updated_at"])
                attempt = _new_attempt(locked, operation=attempt.operation, gateway=gateway)
        is_last = index == len(plan) - 1
        adapter = get_adapter(gateway)
        if checkout:
            attempt, started, session, error = _call_gateway(
                payment.pk,
                attempt,
                lambda key, a=adapter, p=payment, g=gateway: a.create_checkout(_checkout_request(p, key, g)),
            )
        else:
            attempt, started, result, error = _call_gateway(
                payment.pk,
                attempt,
                lambda key, a=adapter, p=payment, g=gateway: a.charge(
                    _charge_request(p, key, g, source, payment_method)
                ),
            )
        if error is None:
            if checkout:
                payment = _record_checkout(payment.pk, attempt, started, session)
            else:
                payment = _record_charge(payment.pk, attempt, started, result=result)
            break
        payment = _record_charge(payment.pk, attempt, started, error=error, final=is_last)
        if isinstance(error, GatewayUnavailable):
            if not is_last:
                logger.warning("failing over", extra={"payment": payment.pk, "from_gateway": gateway})
                continue
            raise _unavailable(gateway, currency, retry_after=error.retry_after, payment=payment.pk, token=bool(source))
        break
    return payment


def _answer_window() -> timedelta:
    """How long a gateway call can take (all retries included) before we go and ask about it."""
    seconds = settings.GATEWAY_CONNECT_TIMEOUT + settings.GATEWAY_READ_TIMEOUT
    return timedelta(seconds=seconds * max(1, settings.GATEWAY_RETRY_MAX_TRIES) + 60)


def _unavailable(gateway: str, currency: str, *, retry_after=None, payment=None, token=False) -> Exception:
    alternatives = [g for g in routing.candidates(currency) if g != gateway and routing.is_healthy(g)]
    return GatewayUnavailableError(
        f"{gateway} is unavailable and nothing was charged. Try again later"
        + (" or tokenize the card with another gateway." if token and alternatives else "."),
        headers={"Retry-After": str(int(retry_after or breaker.state(gateway).retry_after or 30))},
        payment=payment,
        alternatives=alternatives,
    )


def _plan_gateways(
    *, currency: str, amount: int, source: CardSource | None, payment_method: PaymentMethod | None
) -> list[str]:
    """The gateways to try, in order. Refuses up front (nothing created) when none can be called."""
    if source is not None:
        if not routing.supports(source.gateway, currency):
            raise CurrencyNotSupported(f"{source.gateway} does not take {currency}.")
        if not breaker.allow_request(source.gateway):
            raise _unavailable(source.gateway, currency, token=True)
        return [source.gateway]
    allowed = routing.candidates(currency, amount)
    if payment_method is not None:
        saved_at = set(payment_method.gateway_cards.values_list("gateway", flat=True))
        allowed = [g for g in allowed if g in saved_at]
        if not allowed:
            raise CurrencyNotSupported(f"This card is not saved at any gateway that takes {currency}.")
    elif not allowed:
        raise CurrencyNotSupported(f"No gateway takes {currency}.")
    # Routing order, skipping gateways whose breaker is open. Planning claims nothing: a half-open
    # gateway's single probe is claimed right before it is called (payment_create's loop).
    plan = [g for g in allowed if breaker.may_call(g)]
    if not plan:
        raise _unavailable(allowed[0], currency)
    return plan


def _charge_request(payment: Payment, key: str, gateway: str, source, payment_method) -> ChargeRequest:
    saved_card = None
    if payment_method is not None:
        card = payment_method.gateway_cards.get(gateway=gateway)
        saved_card = SavedCardRef(gateway_customer_id=card.gateway_customer_id, gateway_card_id=card.gateway_card_id)
    details = payment.source_details
    return ChargeRequest(
        reference=payment.id,
        idempotency_key=key,
        amount=payment.amount,
        currency=payment.currency,
        email=payment.email,
        description=payment.description,
        capture=payment.capture,
        token=source.token if source else None,
        saved_card=saved_card,
        metadata={**payment.metadata, "smartpay_payment_id": payment.id},
        payment_method_id=details.get("payment_method_id"),
        issuer_id=details.get("issuer_id"),
        installments=details.get("installments", 1),
        notification_url=f"{settings.PUBLIC_BASE_URL}/webhooks/{gateway}",
    )


def _checkout_request(payment: Payment, key: str, gateway: str) -> CheckoutRequest:
    return CheckoutRequest(
        reference=payment.id,
        idempotency_key=key,
        amount=payment.amount,
        currency=payment.currency,
        email=payment.email,
        description=payment.description or f"Payment {payment.id}",
        return_url=f"{settings.PUBLIC_BASE_URL}/checkout/return/{payment.id}",
        notification_url=f"{settings.PUBLIC_BASE_URL}/webhooks/{gateway}",
        expires_at=payment.checkout_expires_at or timezone.now() + timedelta(hours=settings.CHECKOUT_SESSION_HOURS),
    )


def _record_checkout(payment_id: str, attempt: PaymentAttempt, started: float, session) -> Payment:
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment_id)
        _finish_attempt(attempt, outcome=AttemptOutcome.PENDING, started=started)
        payment.gateway = attempt.gateway
        payment.gateway_checkout_id = session.gateway_checkout_id
        payment.next_action = {"type": "redirect", "url": session.redirect_url}
        payment.save()
        return payment


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
        attempt = _new_attempt(payment, operation=operation, gateway=payment.gateway)
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
        _finish_attempt(attempt, outcome=_OUTCOME_FROM_GATEWAY[result.status], started=started, result=result)
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
                _finish_attempt(attempt, outcome=AttemptOutcome.INVALID, started=started)
                raise state.InvalidTransition(f"The payer already paid: the payment is {payment.status}; refund it.")
    if not payment.gateway_payment_id:
        # Nothing exists at the gateway (checkout not paid, 3-D Secure never completed).
        with transaction.atomic():
            locked = Payment.objects.select_for_update().get(pk=payment.pk)
            _finish_attempt(attempt, outcome=AttemptOutcome.SUCCEEDED, started=started, gateway_called=False)
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
        _finish_attempt(attempt, outcome=_OUTCOME_FROM_GATEWAY[result.status], started=started, result=result)
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
    _finish_attempt(attempt, outcome=_error_outcome(error), started=started, error=error)
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
    attempt = _new_attempt(locked, operation=AttemptOperation.SYNC, gateway=locked.gateway)
    _finish_attempt(attempt, outcome=_OUTCOME_FROM_GATEWAY[result.status], started=started, result=result)
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
