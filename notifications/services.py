"""Writes of the notifications app: record an outgoing event, redeliver one; set an app's webhook
endpoint and rotate its signing secret.

Delivery itself (signed POSTs, retries, ordering) is `notifications.delivery`, run by the
`notifications.dispatch_events` task; recording an event queues that task once its transaction
commits, so an event usually leaves within a second instead of waiting for beat (every 10 s).
"""

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from notifications.models import DeliveryState, OutgoingEvent
from payments.models import ClientApp
from payments.models.clients import generate_signing_secret
from smartpay.queueing import enqueue_after_commit

_DISPATCH_AFTER_COMMIT = "enqueue_after_commit[notifications.dispatch_events]"


def event_record(
    *, client_app: ClientApp, type: str, data: dict, dedupe_key: str | None = None, object_id: str = ""
) -> OutgoingEvent:
    """Record an event for `client_app`, once per (type, dedupe_key), about `object_id` (or data["id"]).

    Call it inside the transaction of the change the event describes, so both commit together.
    A second call with the same (type, dedupe_key) returns the first event unchanged (the
    unique constraint decides, not a read before the insert). A new event queues one dispatch
    after the commit (one per transaction, however many events it records); a broker outage
    never reaches the caller, and beat's dispatch sends the event anyway.
    """
    try:
        with transaction.atomic():
            event = OutgoingEvent.objects.create(
                client_app=client_app,
                type=type,
                data=data,
                dedupe_key=dedupe_key,
                object_id=object_id or str(data.get("id") or "")[:60],
            )
    except IntegrityError:
        if dedupe_key is None:
            raise
        return OutgoingEvent.objects.get(type=type, dedupe_key=dedupe_key)
    _dispatch_after_commit()
    from notifications.push import PUSH_EVENT_TYPES, push_for_event

    if type in PUSH_EVENT_TYPES:
        push_for_event(event)  # Web Push to the customer's browsers, queued after the commit
    from notifications.emails import emails_for_event_safely

    emails_for_event_safely(event)  # the payer's receipt or notice, if any: never raises (own savepoint)
    return event


def event_redeliver(event: OutgoingEvent) -> OutgoingEvent:
    """Send `event` again from now, on a fresh retry schedule (`POST /api/v1/events/{id}/redeliver`).

    Whatever its state (delivered, failed, skipped, or pending in its back-off), the event becomes
    `pending`, due now, with `attempts` (the tries of the current schedule) back to 0; its delivery
    attempts are kept and numbering continues. Takes the event's row lock, so it waits (at most
    the send timeouts) for a dispatcher that is sending it right now. Queues a dispatch after commit.
    Returns the event as saved.
    """
    with transaction.atomic():
        locked = OutgoingEvent.objects.select_for_update(of=("self",)).get(pk=event.pk)
        locked.delivery_state = DeliveryState.PENDING
        locked.attempts = 0
        locked.next_attempt_at = timezone.now()
        locked.delivered_at = None
        locked.last_error = ""
        locked.save(update_fields=["delivery_state", "attempts", "next_attempt_at", "delivered_at", "last_error"])
        _dispatch_after_commit()
    return locked


def _dispatch_after_commit() -> None:
    """Queue `notifications.dispatch_events` after the current transaction commits, once per
    transaction (each dispatch sends every due event; more would only find nothing to do)."""
    from notifications.tasks import dispatch_events

    if connection.in_atomic_block and any(
        getattr(func, "__qualname__", "") == _DISPATCH_AFTER_COMMIT for _sids, func, *_rest in connection.run_on_commit
    ):
        return
    enqueue_after_commit(dispatch_events)


# --- The app's webhook endpoint -----------------------------------------------------------------

WEBHOOK_SECRET_GRACE = timedelta(hours=24)


def webhook_endpoint_update(*, client_app: ClientApp, url: str | None = None, enabled: bool | None = None) -> ClientApp:
    """Set the app's webhook `url` and/or `enabled` flag (None leaves a value as it is).

    A URL SmartPay would not POST to (`notifications.urls_guard.check_webhook_url`: a scheme other
    than https outside sandbox, credentials in it, or a host on a loopback, private or link-local
    address unless `EVENTS_ALLOW_PRIVATE_URLS`) raises a ValidationError naming `url`, and nothing
    is saved. An empty URL stops deliveries (due events are then `skipped`). Delivery checks the
    URL again before every POST, so a name that later resolves elsewhere is still refused.
    """
    from notifications.urls_guard import check_webhook_url

    changed = []
    if url is not None:
        if url:
            try:
                check_webhook_url(url)
            except ValueError as error:
                raise ValidationError({"url": [str(error)]}) from None
        client_app.webhook_url = url
        changed.append("webhook_url")
    if enabled is not None:
        client_app.webhook_enabled = enabled
        changed.append("webhook_enabled")
    if changed:
        client_app.save(update_fields=[*changed, "updated_at"])
    return client_app


def webhook_secret_rotate(*, client_app: ClientApp) -> ClientApp:
    """Give the app a new signing secret; the one it replaces keeps signing for 24 h.

    Deliveries carry one `v1=` per valid secret, so a client can deploy the new secret within the
    grace period without missing a delivery. Only one previous secret is kept: rotating again
    within 24 h retires the older one at once. The app's row is locked, so two rotations at the
    same time run one after the other (the second keeps the first's secret as its previous one).
    Returns the app with the new secret in `webhook_secret`: the caller shows it once.
    """
    with transaction.atomic():
        locked = ClientApp.objects.select_for_update().get(pk=client_app.pk)
        locked.previous_webhook_secret = locked.webhook_secret
        locked.previous_webhook_secret_expires_at = timezone.now() + WEBHOOK_SECRET_GRACE
        locked.webhook_secret = generate_signing_secret()
        locked.save(
            update_fields=[
                "webhook_secret",
                "previous_webhook_secret",
                "previous_webhook_secret_expires_at",
                "updated_at",
            ]
        )
    return locked


# --- Payers' preferences --------------------------------------------------------------------------

_PREFERENCE_FIELDS = ("language", "email_alerts", "extra_billing_email", "low_balance_threshold")


def customer_preferences_update(*, customer, **values):
    """Create or replace the customer's notification preferences (`language`, `email_alerts`,
    `extra_billing_email`, `low_balance_threshold`; a field not given takes its default).

    Validated by the model (a language other than es|en, a malformed email: ValidationError naming
    the field; nothing saved). Concurrent first saves end with one row (the OneToOne decides).
    """
    from notifications.models import CustomerPreferences

    unknown = sorted(set(values) - set(_PREFERENCE_FIELDS))
    if unknown:
        raise ValidationError({name: ["Unknown field."] for name in unknown})
    defaults = {name: CustomerPreferences._meta.get_field(name).get_default() for name in _PREFERENCE_FIELDS}
    defaults.update(values)
    CustomerPreferences(customer=customer, **defaults).full_clean(exclude=["customer"])
    try:
        with transaction.atomic():
            preferences, _ = CustomerPreferences.objects.update_or_create(customer=customer, defaults=defaults)
    except IntegrityError:
        preferences, _ = CustomerPreferences.objects.update_or_create(customer=customer, defaults=defaults)
    return preferences
