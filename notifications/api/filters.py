import django_filters

from notifications.models import DeliveryState, OutgoingEvent
from smartpay.api.filters import BoundedIsoDateTimeFilter

# The event types of the contract ("Events out"). A type not listed here is a 400 on the filter,
# not an empty list, so a typo never looks like "no events".
EVENT_TYPES = [
    "payment.succeeded",
    "payment.failed",
    "payment.requires_action",
    "payment.canceled",
    "payment.refunded",
    "credits.granted",
    "credits.low_balance",
    "credits.expiring",
    "credits.expired",
    "auto_renewal.succeeded",
    "auto_renewal.failed",
    "invoice.issued",
    "invoice.rejected",
]


class EventFilter(django_filters.FilterSet):
    type = django_filters.ChoiceFilter(choices=[(name, name) for name in EVENT_TYPES])
    delivery_state = django_filters.ChoiceFilter(choices=DeliveryState.choices)
    created_gte = BoundedIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_lt = BoundedIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = OutgoingEvent
        fields = ["type", "delivery_state", "created_gte", "created_lt"]
