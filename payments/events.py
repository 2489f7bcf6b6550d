"""`payment.*` events for client apps, recorded in the transaction that changes the payment.

Every status change goes through `payments.state.move`, which notes it on the instance; when the
payment row is saved (inside the same transaction), the noted changes become outbox events here,
with `data` = the payment as the API shows it at that moment. So whichever path moved the payment
(API answer, webhook, settlement, checkout return, reconciliation, admin), one mechanism records
its event, and a unique key per (payment, change) makes a second recording impossible:

* `payment.succeeded`, `payment.failed`, `payment.canceled`: once per payment (final moves);
* `payment.requires_action`: once per attempt that asked for it (a confirm may ask again);
* `payment.refunded` (partial or full): once per refund, recorded by the refund's own move to
  `succeeded` (`services.recording`), with the refund in `data.refund`.
"""

from __future__ import annotations

from datetime import UTC

from django.db.models import Max
from django.db.models.signals import post_save
from django.utils import timezone

from payments.enums import PaymentStatus

# Status moves that are events of their own (refund moves are told through payment.refunded).
EVENT_OF_STATUS = {
    PaymentStatus.SUCCEEDED: "payment.succeeded",
    PaymentStatus.FAILED: "payment.failed",
    PaymentStatus.CANCELED: "payment.canceled",
    PaymentStatus.REQUIRES_ACTION: "payment.requires_action",
}


def note_move(payment, target: str) -> None:
    """Called by `state.move` for every status change; the event is written when the row is saved."""
    if target in EVENT_OF_STATUS:
        moves = payment.__dict__.setdefault("_event_moves", [])
        if target not in moves:
            moves.append(target)


def payment_data(payment) -> dict:
    """The payment as `GET /api/v1/payments/{id}` shows it, times in UTC (`…Z`) like the API,
    whatever time zone the path that moved it runs in (a webhook or checkout page: Lima)."""
    from payments.api.serializers import PaymentSerializer

    with timezone.override(UTC):
        return _plain(PaymentSerializer(payment).data)


def record_payment_refunded(payment, refund) -> None:
    """`payment.refunded` for one refund that just succeeded (partial or full)."""
    from notifications.services import event_record
    from payments.api.serializers import RefundSerializer

    data = payment_data(payment)
    with timezone.override(UTC):
        data["refund"] = _plain(RefundSerializer(refund).data)
    event_record(
        client_app=_app_of(payment),
        type="payment.refunded",
        data=data,
        dedupe_key=f"payment.refunded:{refund.pk}",
        object_id=payment.pk,
    )


def _on_payment_saved(sender, instance, **kwargs) -> None:
    moves = instance.__dict__.pop("_event_moves", None)
    if not moves:
        return
    from notifications.services import event_record

    data = payment_data(instance)
    for target in moves:
        if instance.status != target:
            continue  # moved on within the same transaction: only where it ended is told
        key = f"{EVENT_OF_STATUS[target]}:{instance.pk}"
        if target == PaymentStatus.REQUIRES_ACTION:
            key += f":{instance.attempts.aggregate(n=Max('number'))['n'] or 0}"
        event_record(
            client_app=_app_of(instance),
            type=EVENT_OF_STATUS[target],
            data=data,
            dedupe_key=key,
            object_id=instance.pk,
        )


def _app_of(payment):
    """The payment's client app without reading it again (only its key is needed for the row)."""
    from payments.models import ClientApp

    cached = payment._state.fields_cache.get("client_app")
    return cached if cached is not None else ClientApp(pk=payment.client_app_id)


def _plain(value):
    """Serializer output (ReturnDict, OrderedDict, lists) as plain JSON types."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def connect() -> None:
    from payments.models import Payment

    post_save.connect(_on_payment_saved, sender=Payment, dispatch_uid="payments.events.on_payment_saved")
