"""Payments: create (token, saved card, hosted checkout) and record gateway results.

Capture, cancel and sync are in `services.operations`; attempt rows in `services.attempts`.

Every gateway call follows the same three steps, so a crash anywhere leaves a row that can be
settled and never a second charge:

1. commit the intent: the payment and an attempt row (status `started`) in one transaction;
2. call the gateway outside any transaction or lock, with a key derived from the attempt row;
3. record the result in a new transaction with the payment row locked (`select_for_update`),
   moving the status only through `payments.state.move`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from payments import breaker, idempotency, routing, state
from payments.enums import AttemptOperation, AttemptOutcome, PaymentPurpose, PaymentStatus
from payments.exceptions import (
    CurrencyNotSupported,
    GatewayUnavailableError,
)
from payments.gateways.base import (
    ChargeRequest,
    ChargeResult,
    CheckoutRequest,
    GatewayConfigurationError,
    GatewayOutcomeUnknown,
    GatewayUnavailable,
    SavedCardRef,
)
from payments.gateways.registry import get_adapter
from payments.models import ClientApp, Customer, Payment, PaymentAttempt, PaymentMethod
from payments.services import recording
from payments.services.attempts import (
    OUTCOME_FROM_GATEWAY,
    call_gateway,
    error_outcome,
    finish_attempt,
    new_attempt,
)

logger = logging.getLogger("smartpay.payments")


@dataclass(frozen=True)
class CardSource:
    """A single-use card token from a gateway's client-side tokenization."""

    gateway: str
    token: str
    payment_method_id: str | None = None
    issuer_id: str | None = None
    installments: int = 1


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
            outcome = OUTCOME_FROM_GATEWAY[result.status]
            finish_attempt(attempt, outcome=outcome, started=started, result=result)
            recording.record_charge_view(payment, result, gateway=attempt.gateway, source=recording.DIRECT)
        else:
            finish_attempt(attempt, outcome=error_outcome(error), started=started, error=error)
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
        attempt = new_attempt(
            payment,
            operation=AttemptOperation.CHECKOUT if checkout else AttemptOperation.CHARGE,
            gateway=plan[0],
            first=True,
        )

    for index, gateway in enumerate(plan):
        if source is None and not breaker.allow_request(gateway):
            # Its half-open probe went to another request meanwhile: nothing was sent, try the next.
            attempt.error_message = "not called: the gateway's breaker let another request probe it"
            finish_attempt(attempt, outcome=AttemptOutcome.UNAVAILABLE, started=time.monotonic(), gateway_called=False)
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
                attempt = new_attempt(locked, operation=attempt.operation, gateway=gateway)
        is_last = index == len(plan) - 1
        adapter = get_adapter(gateway)
        if checkout:
            attempt, started, session, error = call_gateway(
                payment.pk,
                attempt,
                lambda key, a=adapter, p=payment, g=gateway: a.create_checkout(_checkout_request(p, key, g)),
            )
        else:
            attempt, started, result, error = call_gateway(
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
        finish_attempt(attempt, outcome=AttemptOutcome.PENDING, started=started)
        payment.gateway = attempt.gateway
        payment.gateway_checkout_id = session.gateway_checkout_id
        payment.next_action = {"type": "redirect", "url": session.redirect_url}
        payment.save()
        return payment
