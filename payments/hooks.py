"""What other apps do when a payment succeeds or is refunded, registered explicitly by purpose.

Handlers run inside the transaction that moves the payment (with its row locked), so their
effects (e.g. a credit grant) commit or roll back together with the status change. They must be
idempotent per payment; the database should make a second effect impossible (unique constraint).
Apps register their handlers in `AppConfig.ready()`. A handler registered for `ANY_PURPOSE`
runs for every payment (e.g. invoicing), after the purpose's own handlers.
"""

import logging
from collections import defaultdict
from collections.abc import Callable

from django.db import transaction

ANY_PURPOSE = "*"

_on_success: dict[str, list[Callable]] = defaultdict(list)
_on_refund: dict[str, list[Callable]] = defaultdict(list)


def register_success_handler(purpose: str, handler: Callable) -> None:
    if handler not in _on_success[purpose]:
        _on_success[purpose].append(handler)


def register_refund_handler(purpose: str, handler: Callable) -> None:
    if handler not in _on_refund[purpose]:
        _on_refund[purpose].append(handler)


def run_success_handlers(payment) -> None:
    for handler in [*_on_success.get(payment.purpose, ()), *_on_success.get(ANY_PURPOSE, ())]:
        handler(payment)


def run_refund_handlers(payment, refund) -> dict:
    """Returns what the handlers report (merged), e.g. {"credits_clawed_back": 40}.

    Each handler runs in its own savepoint: the gateway has already given the money back, so a
    failing handler (a claw-back, a credit note) is undone alone and logged as an alert, and can
    never roll back the record of the refund itself.
    """
    report: dict = {}
    for handler in [*_on_refund.get(payment.purpose, ()), *_on_refund.get(ANY_PURPOSE, ())]:
        try:
            with transaction.atomic():
                report.update(handler(payment, refund) or {})
        except Exception:
            logging.getLogger("smartpay.alerts").exception(
                "a refund handler failed; the refund stands, its side effect needs a person",
                extra={"payment": payment.pk, "refund": refund.pk, "handler": getattr(handler, "__name__", "")},
            )
    return report
