"""Outgoing events in the admin: read-only records of what client apps were told and each delivery
try; "Redeliver" hands events back to the delivery engine. Times show in the project's TIME_ZONE
(Lima), as everywhere in the admin."""

import json
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin.utils import quote
from django.urls import NoReverseMatch, reverse
from django.utils import formats, timezone
from django.utils.html import format_html

from notifications import selectors, services
from notifications.models import DeliveryAttempt, DeliveryState, OutgoingEvent
from payments.admin import format_minor_units
from payments.models import ClientApp
from smartpay.admin_base import ReadOnlyInline, RecordAdmin

# Admin pages of the objects events are about, by id prefix (others are shown as plain text).
OBJECT_PAGES = {
    "pay": "admin:payments_payment_change",
    "cus": "admin:payments_customer_change",
    "inv": "admin:billing_invoice_change",
}


def _link(url_name: str, pk: str):
    try:
        return format_html('<a href="{}">{}</a>', reverse(url_name, args=[quote(pk)]), pk)
    except NoReverseMatch:
        return pk


def _local(value) -> str:
    return formats.localize(timezone.localtime(value)) if value else "—"


def object_link(object_id: str):
    if not object_id:
        return "—"
    url_name = OBJECT_PAGES.get(object_id.split("_", 1)[0])
    return _link(url_name, object_id) if url_name else object_id


class DeliveryAttemptInline(ReadOnlyInline):
    model = DeliveryAttempt
    fields = ["number", "created_at", "url", "status_code", "duration_ms", "error", "response_excerpt"]
    readonly_fields = fields
    ordering = ["number"]


@admin.register(OutgoingEvent)
class OutgoingEventAdmin(RecordAdmin):
    list_display = [
        "id",
        "type",
        "app_link",
        "object_link",
        "delivery_state",
        "attempts",
        "next_or_delivered",
        "created_at",
    ]
    list_filter = ["delivery_state", "type", "client_app"]
    search_fields = ["id", "object_id"]
    date_hierarchy = "created_at"
    list_select_related = ["client_app"]
    inlines = [DeliveryAttemptInline]
    actions = ["redeliver"]
    fields = [
        "id",
        "client_app",
        "type",
        "object_link",
        "delivery_state",
        "attempts",
        "next_try",
        "delivered_at",
        "last_error",
        "dedupe_key",
        "created_at",
        "data_amount",
        "pretty_data",
    ]

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "object_link", "next_try", "data_amount", "pretty_data"]

    @admin.display(description="Client app", ordering="client_app__name")
    def app_link(self, obj):
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:payments_clientapp_change", args=[quote(obj.client_app_id)]),
            obj.client_app,
        )

    @admin.display(description="Object", ordering="object_id")
    def object_link(self, obj):
        return object_link(obj.object_id)

    @admin.display(description="Next try")
    def next_try(self, obj):
        """Only a pending event has one (as in the API); the column keeps its last value otherwise."""
        return _local(obj.next_attempt_at) if obj.delivery_state == DeliveryState.PENDING else "—"

    @admin.display(description="Next try / delivered")
    def next_or_delivered(self, obj):
        if obj.delivery_state == DeliveryState.PENDING:
            return format_html("next try {}", _local(obj.next_attempt_at))
        if obj.delivery_state == DeliveryState.DELIVERED:
            return _local(obj.delivered_at)
        return "—"

    @admin.display(description="Amount (in data)")
    def data_amount(self, obj):
        """A payment's (or refund's) amount as money; the data itself keeps minor units, as the API does."""
        data = obj.data if isinstance(obj.data, dict) else {}
        if not isinstance(data.get("amount"), int) or not data.get("currency"):
            return "—"
        money = format_minor_units(data["amount"], data["currency"])
        refund = data.get("refund")
        if isinstance(refund, dict) and isinstance(refund.get("amount"), int):
            return f"{money} (refund {format_minor_units(refund['amount'], refund.get('currency', data['currency']))})"
        return money

    @admin.display(description="Data (as sent)")
    def pretty_data(self, obj):
        return format_html(
            '<pre style="white-space: pre-wrap; margin: 0">{}</pre>',
            json.dumps(obj.data, indent=2, ensure_ascii=False, sort_keys=True),
        )

    def has_redeliver_permission(self, request):
        return request.user.has_perm("notifications.redeliver_outgoingevent")

    @admin.action(description="Redeliver", permissions=["redeliver"])
    def redeliver(self, request, queryset):
        queued = 0
        for event in queryset.select_related("client_app"):
            if not selectors.webhook_endpoint_ready(event.client_app):
                self.message_user(
                    request,
                    f"{event.pk}: {event.client_app} has no webhook URL, or delivery is off; not queued.",
                    level=messages.WARNING,
                )
                continue
            services.event_redeliver(event)
            self.log_change(request, event, f"Redelivery queued by {request.user.get_username()}")
            queued += 1
        self.message_user(
            request, f"Queued {queued} event(s) for delivery.", level=messages.SUCCESS if queued else messages.WARNING
        )


def delivery_health_html(client_app: ClientApp):
    """The app's delivery health for its admin page: last 24 h by state, and the last failed try."""
    if not client_app or not client_app.pk:
        return "—"
    health = selectors.delivery_health(client_app=client_app)
    events_url = reverse("admin:notifications_outgoingevent_changelist")

    def events(state: str, count: int):
        query = urlencode({"client_app__id__exact": client_app.pk, "delivery_state__exact": state})
        return format_html('<a href="{}?{}">{} {}</a>', events_url, query, count, state)

    counts = format_html(
        "Last 24 h: {} · {} · {} · {} skipped",
        events("delivered", health.delivered),
        events("failed", health.failed),
        events("pending", health.pending),
        health.skipped,
    )
    failure = health.last_failure
    if failure is None:
        last = "Last failure: none."
    else:
        what = f"HTTP {failure.status_code}" if failure.status_code else (failure.error or "no answer")
        last = format_html(
            "Last failure: {} — {} (try {}): {}",
            _local(failure.created_at),
            _link("admin:notifications_outgoingevent_change", failure.event_id),
            failure.number,
            what,
        )
    if selectors.webhook_endpoint_ready(client_app):
        return format_html("{}<br>{}", counts, last)
    return format_html("{}<br>{}<br><strong>Delivery is off</strong> (no URL, disabled or inactive app).", counts, last)


from notifications import admin_alerts, admin_emails  # noqa: E402, F401  (alerts and payer emails: admin_alerts.py, admin_emails.py)
