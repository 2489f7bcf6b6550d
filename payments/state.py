"""The payment status machine: the only code that changes `Payment.status`.

The allowed moves are the contract's. A move the contract does not list is refused: API callers
get an error, while gateway-driven updates (webhooks, reconciliation, late answers) that would move
a payment backwards are recorded by the caller and ignored.

The rules around it (the README's "How money is kept safe" says the same for operators):

* **Only a failure before the request left is "nothing was processed"** (DNS, connection refused,
  connect timeout, TLS handshake: `GatewayUnavailable`, safe to retry and fail over). Anything after
  the request may have been sent is `GatewayOutcomeUnknown`: the payment stays `processing` (or
  `authorized` for a lost capture/cancel, or the refund `pending`), is never sent again as a new
  request that could charge or refund twice, never failed over, and is settled by asking the
  gateway (`services.settlement`).
* **One fact, one writer**: what a gateway did is recorded by `services.recording`, whichever path
  learned it, keyed by the gateway's ids; `amount_captured` is the gateway's captured amount and
  `amount_refunded` the sum of succeeded `Refund` rows, derived under the payment's row lock.
  Side effects run on a row's transition, so once.
* **A view that does not fit is never applied**: another amount or currency is refused; money
  for a payment that does not own it (a second charge, a charge for a `failed`/`canceled` payment:
  the final states below are never reopened) becomes a `StrayCharge`.
* **A hosted checkout stays `pending` while its session can be paid**: a declined try is shown in
  `failure`, not final; it fails when the session expires or is canceled (closed at the gateway
  first).
"""

from payments import events
from payments.enums import PaymentStatus as S
from payments.models import Payment
from smartpay.api.errors import ApiError

ALLOWED: dict[str, frozenset[str]] = {
    S.PENDING: frozenset({S.PROCESSING, S.REQUIRES_ACTION, S.AUTHORIZED, S.SUCCEEDED, S.FAILED, S.CANCELED}),
    S.PROCESSING: frozenset({S.REQUIRES_ACTION, S.AUTHORIZED, S.SUCCEEDED, S.FAILED, S.CANCELED}),
    S.REQUIRES_ACTION: frozenset({S.PROCESSING, S.AUTHORIZED, S.SUCCEEDED, S.FAILED, S.CANCELED}),
    S.AUTHORIZED: frozenset({S.SUCCEEDED, S.CANCELED}),
    S.SUCCEEDED: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.PARTIALLY_REFUNDED: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.FAILED: frozenset(),
    S.CANCELED: frozenset(),
    S.REFUNDED: frozenset(),
}

FINAL = frozenset({S.FAILED, S.CANCELED, S.REFUNDED})


class InvalidTransition(ApiError):
    status_code = 409
    code = "invalid_payment_state"
    title = "The payment cannot do that in its current status"


def can_move(current: str, target: str) -> bool:
    return target in ALLOWED[current]


def move(payment: Payment, target: str, *, strict: bool = True) -> bool:
    """Set `payment.status` to `target` if the contract allows it (the caller saves the row).

    The caller holds the payment's row lock. Returns True when the status changed. A move to the
    current status is a no-op (False). A disallowed move raises InvalidTransition when `strict`,
    otherwise it is ignored and returns False.
    """
    current = payment.status
    if target == current and target != S.PARTIALLY_REFUNDED:
        return False
    if not can_move(current, target):
        if strict:
            raise InvalidTransition(f"A {current} payment cannot become {target}.")
        return False
    payment.status = target
    events.note_move(payment, target)  # its `payment.*` event is written when the row is saved
    return True
