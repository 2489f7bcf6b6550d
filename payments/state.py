"""The payment status machine: the only code that changes `Payment.status`.

The allowed moves are the contract's. A move the contract does not list is refused: API callers
get an error, while gateway-driven updates (webhooks, reconciliation, late answers) that would move
a payment backwards are recorded by the caller and ignored.
"""

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
    return True
