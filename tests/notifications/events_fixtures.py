"""Shared by the events API and admin tests: events with delivery attempts, and a counter of the
calls to the delivery engine's `notifications.services.event_redeliver` (the real one runs)."""

import types
from datetime import timedelta

from django.utils import timezone

from notifications import services
from notifications.models import DeliveryAttempt, OutgoingEvent


def make_event(client_app, *, type="payment.succeeded", state="pending", object_id="pay_x", attempts=0, **extra):
    return OutgoingEvent.objects.create(
        client_app=client_app,
        type=type,
        data={"id": object_id, "object": type.split(".", 1)[0]},
        object_id=object_id,
        delivery_state=state,
        attempts=attempts,
        **extra,
    )


def add_attempt(event, number, *, status_code=None, error="", minutes_ago=0):
    attempt = DeliveryAttempt.objects.create(
        event=event,
        number=number,
        url=event.client_app.webhook_url,
        status_code=status_code,
        duration_ms=120 + number,
        response_excerpt="" if status_code is None else f"answer {status_code}",
        error=error,
    )
    if minutes_ago:
        DeliveryAttempt.objects.filter(pk=attempt.pk).update(created_at=timezone.now() - timedelta(minutes=minutes_ago))
    return attempt


def count_redeliveries(monkeypatch):
    """Wraps `event_redeliver`; `.redelivered` lists the ids of the events it was called with."""
    real = services.event_redeliver
    redelivered = []

    def counting(event, *args, **kwargs):
        redelivered.append(event.pk)
        return real(event, *args, **kwargs)

    monkeypatch.setattr(services, "event_redeliver", counting)
    return types.SimpleNamespace(redelivered=redelivered)
