"""Read queries of the notifications app, shared by the API and the admin."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from notifications.models import DeliveryAttempt, DeliveryState, OutgoingEvent
from payments.models import ClientApp

HEALTH_WINDOW = timedelta(hours=24)


def event_list(*, client_app: ClientApp) -> QuerySet:
    """The app's outgoing events (the API orders them newest first by id, which is time-ordered)."""
    return OutgoingEvent.objects.filter(client_app=client_app)


def event_get(*, client_app: ClientApp, event_id: str) -> OutgoingEvent:
    """The app's own event with its delivery attempts, or OutgoingEvent.DoesNotExist (another app's
    id looks like a missing one)."""
    return event_list(client_app=client_app).prefetch_related("delivery_attempts").get(pk=event_id)


def webhook_endpoint_ready(client_app: ClientApp) -> bool:
    """Whether the app's events can be sent now (else the dispatcher marks due events `skipped`)."""
    return bool(client_app.is_active and client_app.webhook_enabled and client_app.webhook_url)


def failed_attempts() -> QuerySet:
    """Delivery attempts that did not get a 2xx (timeouts, connection errors, refused URLs, non-2xx)."""
    return DeliveryAttempt.objects.filter(
        Q(status_code__isnull=True) | Q(status_code__lt=200) | Q(status_code__gte=300)
    )


@dataclass(frozen=True)
class DeliveryHealth:
    """Events of the last 24 h by delivery state, and the app's most recent failed attempt."""

    delivered: int
    failed: int
    pending: int
    skipped: int
    last_failure: DeliveryAttempt | None


def delivery_health(*, client_app: ClientApp, now: datetime | None = None) -> DeliveryHealth:
    since = (now or timezone.now()) - HEALTH_WINDOW
    counts = (
        event_list(client_app=client_app)
        .filter(created_at__gte=since)
        .aggregate(**{state: Count("pk", filter=Q(delivery_state=state)) for state in DeliveryState.values})
    )
    last_failure = (
        failed_attempts().filter(event__client_app=client_app).select_related("event").order_by("-created_at").first()
    )
    return DeliveryHealth(
        delivered=counts[DeliveryState.DELIVERED],
        failed=counts[DeliveryState.FAILED],
        pending=counts[DeliveryState.PENDING],
        skipped=counts[DeliveryState.SKIPPED],
        last_failure=last_failure,
    )


# --- Payers' preferences --------------------------------------------------------------------------


def customer_preferences_get(*, customer):
    """The customer's preferences; when none were saved, an unsaved row with the defaults."""
    from notifications.models import CustomerPreferences

    preferences = CustomerPreferences.objects.filter(customer=customer).first()
    return preferences if preferences is not None else CustomerPreferences(customer=customer)


def low_balance_threshold(*, customer_id: str, preferences=None) -> int:
    """The credits below which `credits.low_balance` is told for the customer: their preferences'
    `low_balance_threshold`, else `CREDITS_LOW_BALANCE_THRESHOLD`."""
    from django.conf import settings

    from notifications.models import CustomerPreferences

    if preferences is None:
        preferences = CustomerPreferences.objects.filter(customer_id=customer_id).first()
    if preferences is not None and preferences.low_balance_threshold is not None:
        return preferences.low_balance_threshold
    return settings.CREDITS_LOW_BALANCE_THRESHOLD
