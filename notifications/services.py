"""Writes of the notifications app: record an outgoing event (delivery comes later)."""

from django.db import IntegrityError, transaction

from notifications.models import OutgoingEvent
from payments.models import ClientApp


def event_record(*, client_app: ClientApp, type: str, data: dict, dedupe_key: str | None = None) -> OutgoingEvent:
    """Record an event for `client_app`, once per (type, dedupe_key).

    Call it inside the transaction of the change the event describes, so both commit together.
    A second call with the same (type, dedupe_key) returns the first event unchanged (the
    unique constraint decides, not a read before the insert).
    """
    try:
        with transaction.atomic():
            return OutgoingEvent.objects.create(client_app=client_app, type=type, data=data, dedupe_key=dedupe_key)
    except IntegrityError:
        if dedupe_key is None:
            raise
        return OutgoingEvent.objects.get(type=type, dedupe_key=dedupe_key)
