"""Attempt rows: one per call to a gateway, committed before the call, closed with its outcome.

Shared by every service that calls a gateway for a payment (create, capture, cancel, confirm):
`new_attempt` commits the intent, `call_gateway` makes the call with bounded retries of errors
that prove nothing was processed, `finish_attempt` records the outcome (and tells the breaker).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from payments import breaker
from payments.enums import AttemptOperation, AttemptOutcome
from payments.gateways.base import (
    ChargeStatus,
    GatewayError,
    GatewayInvalidRequest,
    GatewayOutcomeUnknown,
    GatewayUnavailable,
)
from payments.gateways.registry import get_adapter
from payments.models import Payment, PaymentAttempt
from reporting.prom import observe_attempt

logger = logging.getLogger("smartpay.payments")

OUTCOME_FROM_GATEWAY = {
    ChargeStatus.SUCCEEDED: AttemptOutcome.SUCCEEDED,
    ChargeStatus.AUTHORIZED: AttemptOutcome.AUTHORIZED,
    ChargeStatus.REQUIRES_ACTION: AttemptOutcome.REQUIRES_ACTION,
    ChargeStatus.PENDING: AttemptOutcome.PENDING,
    ChargeStatus.FAILED: AttemptOutcome.DECLINED,
    ChargeStatus.CANCELED: AttemptOutcome.SUCCEEDED,
    ChargeStatus.REFUNDED: AttemptOutcome.SUCCEEDED,
    ChargeStatus.PARTIALLY_REFUNDED: AttemptOutcome.SUCCEEDED,
}


def new_attempt(payment: Payment, *, operation: str, gateway: str, first: bool = False) -> PaymentAttempt:
    """Create the next attempt row. The caller holds the payment's row lock (or just created it)."""
    number = 1 if first else (payment.attempts.aggregate(n=Max("number"))["n"] or 0) + 1
    return PaymentAttempt.objects.create(
        payment=payment,
        number=number,
        operation=operation,
        gateway=gateway,
        idempotency_key=f"{payment.id}:{operation}:{number}",
    )


def finish_attempt(
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
    observe_attempt(
        gateway=attempt.gateway, operation=attempt.operation, outcome=outcome, duration_ms=attempt.duration_ms
    )
    if gateway_called and (attempt.operation != AttemptOperation.SYNC or outcome in breaker.FAILURE_OUTCOMES):
        breaker.record(attempt.gateway, outcome, since=attempt.created_at)


def retry_attempt(payment_id: str, previous: PaymentAttempt) -> PaymentAttempt:
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


def call_gateway(payment_id: str, attempt: PaymentAttempt, call: Callable[[str], object]):
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
            attempt = retry_attempt(payment_id, attempt)
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
            finish_attempt(attempt, outcome=error_outcome(error), started=started, error=error)
            logger.info("retrying gateway call", extra={"gateway": attempt.gateway, "delay_ms": int(delay * 1000)})
            time.sleep(delay)
        except GatewayError as error:
            return attempt, started, None, unknown or error
    raise AssertionError("unreachable")  # pragma: no cover


def error_outcome(error: GatewayError) -> str:
    if isinstance(error, GatewayUnavailable):
        return AttemptOutcome.UNAVAILABLE
    if isinstance(error, GatewayOutcomeUnknown):
        return AttemptOutcome.UNKNOWN
    if isinstance(error, GatewayInvalidRequest):
        return AttemptOutcome.INVALID
    return AttemptOutcome.ERROR
