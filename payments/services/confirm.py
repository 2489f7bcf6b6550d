"""3-D Secure: finishing a `requires_action` payment, and failing one the payer never finished.

How a payment leaves `requires_action` depends on the gateway:

* **Culqi** answers a charge that needs 3-D Secure with HTTP 200 `action_code: REVIEW` and makes no
  charge (culqi.md §5.1, §7). After the payer's browser runs Culqi3DS, the *same* charge (same token,
  which SmartPay never stores, so the client sends it again) is sent once more with
  `authentication_3DS`. That is a new gateway call, so it follows the three steps of
  `payments.services.payments`: the payment moves to `processing` and a `charge` attempt row is
  committed, the gateway is called with no lock held, and the answer is recorded with the payment
  row locked. A crash or a timeout leaves a `processing` payment that the settle job finishes by
  asking Culqi (by our reference): the charge is never sent twice.
* **Mercado Pago** created the payment already (`pending`/`pending_challenge`) and updates it
  itself after the challenge, so confirming means asking it where the payment stands (a `sync`).

A payment nobody confirms fails after `PAYMENT_ACTION_TTL_MINUTES` with `failure.code:
"action_expired"` (`expire_stale_actions`, every minute), but only after asking the gateway when
something exists there (Mercado Pago may have completed it meanwhile) and closing it there when it
is still waiting for the payer, so that a late challenge can never take money for a failed payment.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from payments import breaker, state
from payments.enums import AttemptOperation, AttemptOutcome, PaymentStatus
from payments.exceptions import GatewayRejected, GatewayUnavailableError, PaymentBusy
from payments.gateways.base import (
    ChargeStatus,
    GatewayConfigurationError,
    GatewayError,
    GatewayOutcomeUnknown,
    GatewayUnavailable,
)
from payments.gateways.registry import get_adapter
from payments.models import Payment, PaymentAttempt
from payments.services import recording
from payments.services.attempts import OUTCOME_FROM_GATEWAY, call_gateway, error_outcome, finish_attempt, new_attempt
from payments.services.operations import payment_fail, payment_query_gateway, payment_record_sync
from payments.services.payments import (
    CardSource,
    _answer_window,
    _charge_request,
    _record_charge,
    payment_apply_gateway_result,
)
from smartpay.api.errors import ApiError

logger = logging.getLogger("smartpay.payments")

ACTION_EXPIRED = "action_expired"
AUTHENTICATION_REQUIRED = "authentication_required"

# Gateways where 3-D Secure ends with the charge being sent again with the payer's result. The
# others (Mercado Pago) run the challenge on a payment they already created and update it themselves.
CHARGE_AGAIN_GATEWAYS = frozenset({"culqi"})


class ConfirmationInvalid(ApiError):
    """The confirm body does not fit the payment's gateway. Shaped like any validation error."""

    status_code = 400
    code = "validation_error"
    title = "Invalid request"


# --- Confirm --------------------------------------------------------------------------------------


def payment_confirm(
    *, payment: Payment, token: str | None = None, authentication_3ds: Mapping[str, Any] | None = None
) -> Payment:
    """Finish a `requires_action` payment after the payer's 3-D Secure challenge. Returns it, updated.

    Culqi: charge again with `token` (not needed for a saved card) and `authentication_3ds`.
    Mercado Pago: no body; ask the gateway and record its answer. The result may be any status
    (`succeeded`, `authorized`, `failed`, still `requires_action`, or `processing` when the answer
    was lost). Anything but `requires_action` is `409 invalid_payment_state`; a body that does not
    fit the gateway is 400 and changes nothing.
    """
    _require_action(payment)
    if payment.gateway in CHARGE_AGAIN_GATEWAYS:
        _check_charge_again_body(payment, token, authentication_3ds)
        return _confirm_by_charging_again(payment, token=token, authentication_3ds=authentication_3ds)
    if token is not None or authentication_3ds is not None:
        raise ConfirmationInvalid(
            f"A {payment.gateway} payment is confirmed with an empty body: the gateway is asked where it stands.",
            errors={
                name: [f"Not used for {payment.gateway} payments; send an empty body."]
                for name, value in (("token", token), ("authentication_3DS", authentication_3ds))
                if value is not None
            },
        )
    return _confirm_by_asking(payment)


def _require_action(payment: Payment) -> None:
    if payment.status != PaymentStatus.REQUIRES_ACTION:
        raise state.InvalidTransition(
            f"Only a requires_action payment can be confirmed; this one is {payment.status}.", payment=payment.pk
        )


def _check_charge_again_body(payment: Payment, token: str | None, authentication_3ds) -> None:
    errors: dict[str, list[str]] = {}
    if not authentication_3ds:
        errors["authentication_3DS"] = ["Required: the payer's 3-D Secure result (Culqi3DS `parameters3DS`)."]
    if payment.payment_method_id:
        if token is not None:
            errors["token"] = ["This payment charges a saved card; send only authentication_3DS."]
    elif not token:
        errors["token"] = ["Required: the same card token the payment was created with."]
    if errors:
        raise ConfirmationInvalid("The confirmation does not fit this payment.", errors=errors)


def _confirm_by_charging_again(payment: Payment, *, token: str | None, authentication_3ds: Mapping) -> Payment:
    gateway = payment.gateway
    if not breaker.allow_request(gateway):
        raise GatewayUnavailableError(
            f"{gateway} is unavailable; nothing changed. Retry the confirmation shortly.",
            headers={"Retry-After": str(int(breaker.state(gateway).retry_after or 30))},
            payment=payment.pk,
        )
    # Step 1: commit the intent. `processing` (with a settle time) until the answer is recorded.
    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment.pk)
        _require_action(locked)
        if locked.attempts.filter(outcome=AttemptOutcome.STARTED).exists():
            raise PaymentBusy("Another operation on this payment is in progress; retry shortly.")
        state.move(locked, PaymentStatus.PROCESSING)
        challenge = locked.next_action  # the payer's part is done; kept to restore if nothing happens
        locked.next_action = None
        locked.settle_after = timezone.now() + _answer_window()
        locked.save()
        attempt = new_attempt(locked, operation=AttemptOperation.CHARGE, gateway=gateway)

    # Step 2: the same charge as the first one, plus the payer's 3-D Secure result; no lock held.
    source = CardSource(gateway=gateway, token=token) if token else None
    adapter = get_adapter(gateway)

    def charge(key: str):
        request = _charge_request(locked, key, gateway, source, locked.payment_method)
        return adapter.charge(replace(request, authentication_3ds=dict(authentication_3ds)))

    attempt, started, result, error = call_gateway(locked.pk, attempt, charge)

    # Step 3: record the answer with the row locked.
    if error is None or isinstance(error, GatewayOutcomeUnknown):
        # An answer, or a lost one (stays `processing` for the settle job; never charged again).
        return _record_charge(locked.pk, attempt, started, result=result, error=error)
    # Certainly not processed (unavailable) or refused (bad token, expired token, credentials):
    # nothing was charged. Back to `requires_action`, so the client may retry until the action expires.
    with transaction.atomic():
        again = Payment.objects.select_for_update().get(pk=locked.pk)
        finish_attempt(attempt, outcome=error_outcome(error), started=started, error=error)
        if state.move(again, PaymentStatus.REQUIRES_ACTION, strict=False):
            again.next_action = challenge
            again.settle_after = None
            again.save()
    if isinstance(error, GatewayUnavailable):
        raise GatewayUnavailableError(
            f"{gateway} is unavailable and nothing was charged; the payment still requires action. Retry shortly.",
            headers={"Retry-After": str(int(error.retry_after or breaker.state(gateway).retry_after or 30))},
            payment=locked.pk,
        )
    if isinstance(error, GatewayConfigurationError):
        logger.error("gateway configuration error", extra={"gateway": gateway})
    raise GatewayRejected(f"{error.message} Nothing was charged; the payment still requires action.", payment=locked.pk)


def _confirm_by_asking(payment: Payment) -> Payment:
    started = time.monotonic()
    try:
        result = payment_query_gateway(payment)
    except GatewayError as error:
        logger.warning("confirm: gateway not reachable", extra={"payment": payment.pk, "error_code": error.code})
        raise GatewayUnavailableError(
            f"{payment.gateway} could not be asked; nothing changed. Retry shortly.",
            headers={"Retry-After": str(int(getattr(error, "retry_after", None) or 30))},
            payment=payment.pk,
        ) from None
    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment.pk)
        if result is not None:
            payment_record_sync(locked, result, started=started, source=recording.CONFIRM)
        return locked


# --- Giving up on a challenge ---------------------------------------------------------------------


def payment_abandon_action(*, payment: Payment, code: str, message: str) -> Payment:
    """Fail a `requires_action` payment with `code`, closing it at the gateway first when it exists there.

    Culqi's REVIEW made no charge: the payment fails at once, under its row lock. A Mercado Pago
    payment waiting for its challenge is cancelled at Mercado Pago first (a cancel attempt: committed,
    called with no lock held, recorded under the lock), so a challenge completed later cannot take
    money; if the gateway answers that the payment went ahead (approved meanwhile), that is recorded
    instead. When the gateway cannot be reached the payment stays `requires_action` (the expiry job
    tries again). Returns the payment as it now is.
    """
    _abandon(payment.pk, code=code, message=message)
    return Payment.objects.get(pk=payment.pk)


def _abandon(payment_id: str, *, code: str, message: str, stale_before: datetime | None = None) -> str:
    """Returns expired|completed|skipped|busy|error (see `expire_stale_actions`)."""
    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment_id)
        if locked.status != PaymentStatus.REQUIRES_ACTION:
            return "skipped"
        if stale_before is not None and action_since(locked) > stale_before:
            return "skipped"  # a new challenge began meanwhile (a confirm answered REVIEW again)
        if locked.attempts.filter(outcome=AttemptOutcome.STARTED).exists():
            return "busy"  # a confirm is on its way to the gateway
        if not locked.gateway_payment_id:
            payment_fail(locked, code=code, message=message)  # nothing exists at the gateway
            return "expired"
        attempt = new_attempt(locked, operation=AttemptOperation.CANCEL, gateway=locked.gateway)

    started = time.monotonic()
    try:
        result = get_adapter(locked.gateway).cancel(locked.gateway_payment_id, idempotency_key=attempt.idempotency_key)
    except GatewayError as error:
        # Unknown, unavailable, or refused because it is no longer cancellable (e.g. approved just now):
        # the payment stays as it is and the next run asks the gateway again.
        finish_attempt(attempt, outcome=error_outcome(error), started=started, error=error)
        logger.warning("could not close a 3-D Secure payment", extra={"payment": payment_id, "error_code": error.code})
        return "error"
    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment_id)
        finish_attempt(attempt, outcome=OUTCOME_FROM_GATEWAY[result.status], started=started, result=result)
        if result.status == ChargeStatus.CANCELED:
            payment_fail(locked, code=code, message=message)
        else:
            payment_apply_gateway_result(locked, result, gateway=locked.gateway)
        return "expired" if locked.status == PaymentStatus.FAILED and locked.failure_code == code else "completed"


# --- Expiry ---------------------------------------------------------------------------------------


def _action_since_expression():
    """When a payment entered `requires_action`, as SQL.

    The latest attempt that *put* it there (a charge answered REVIEW / pending_challenge; a confirm
    answered by a new challenge restarts the clock). When only `sync` attempts saw it there (it came
    through a webhook or the settle job), the first of those: later syncs that merely found it still
    waiting must not restart the clock. Without any such attempt: `updated_at`.
    """
    waiting = PaymentAttempt.objects.filter(
        payment=OuterRef("pk"), outcome=AttemptOutcome.REQUIRES_ACTION, finished_at__isnull=False
    )
    put_there = waiting.exclude(operation=AttemptOperation.SYNC).order_by("-finished_at").values("finished_at")[:1]
    seen_there = waiting.filter(operation=AttemptOperation.SYNC).order_by("finished_at").values("finished_at")[:1]
    return Coalesce(Subquery(put_there), Subquery(seen_there), F("updated_at"))


def action_since(payment: Payment) -> datetime:
    """When this payment entered `requires_action` (see `_action_since_expression`)."""
    return (
        Payment.objects.filter(pk=payment.pk)
        .annotate(since=_action_since_expression())
        .values_list("since", flat=True)[0]
    )


def stale_actions(*, before: datetime) -> QuerySet[Payment]:
    """`requires_action` payments that entered it at or before `before`, oldest first (one query)."""
    return (
        Payment.objects.filter(status=PaymentStatus.REQUIRES_ACTION)
        .annotate(action_since=_action_since_expression())
        .filter(action_since__lte=before)
        .order_by("action_since", "pk")
    )


def expire_stale_actions(*, now: datetime | None = None, limit: int = 500) -> dict[str, int]:
    """Fail every `requires_action` payment older than `PAYMENT_ACTION_TTL_MINUTES` (`action_expired`).

    Candidates come from one query. For each, when something exists at the gateway (a Mercado Pago
    payment) the gateway is asked first: completed meanwhile is recorded, not expired; still waiting
    for the payer is cancelled there, then failed here. A Culqi REVIEW has no charge at the gateway:
    nothing to ask. Each expiry happens under the payment's row lock after re-checking its status and
    age. Returns counts: expired, completed (the gateway had finished it), skipped (changed meanwhile),
    busy (a confirm in flight), error (the gateway could not be asked or closed; next run retries).
    """
    now = now or timezone.now()
    ttl = timedelta(minutes=settings.PAYMENT_ACTION_TTL_MINUTES)
    before = now - ttl
    counts: dict[str, int] = {}
    for payment_id in list(stale_actions(before=before).values_list("pk", flat=True)[:limit]):
        outcome = _expire_one(payment_id, before=before, ttl=ttl)
        counts[outcome] = counts.get(outcome, 0) + 1
    if counts:
        logger.info("stale 3-D Secure payments", extra={"counts": counts})
    return counts


def _expire_one(payment_id: str, *, before: datetime, ttl: timedelta) -> str:
    payment = Payment.objects.get(pk=payment_id)
    if payment.status != PaymentStatus.REQUIRES_ACTION:
        return "skipped"
    if payment.gateway_payment_id:
        # The payer may have completed the challenge at the gateway: ask before giving up.
        started = time.monotonic()
        try:
            result = payment_query_gateway(payment)
        except GatewayError as error:
            logger.warning("expiry: gateway not reachable", extra={"payment": payment_id, "error_code": error.code})
            return "error"
        if result is not None:
            with transaction.atomic():
                locked = Payment.objects.select_for_update().get(pk=payment_id)
                if locked.status != PaymentStatus.REQUIRES_ACTION:
                    return "skipped"
                payment_record_sync(locked, result, started=started)
                if locked.status != PaymentStatus.REQUIRES_ACTION:
                    return "completed"
    minutes = int(ttl.total_seconds() // 60)
    return _abandon(
        payment_id,
        code=ACTION_EXPIRED,
        message=f"The payer did not complete 3-D Secure within {minutes} minutes; nothing was charged.",
        stale_before=before,
    )
