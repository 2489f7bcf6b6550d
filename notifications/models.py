"""Outgoing events: what client apps are told (`credits.expiring`, `auto_renewal.failed`, …).

Rows are written inside the transaction of the change they describe (an outbox), so an event
exists exactly when its change committed. Delivery (signed POSTs with retries) lands later and
only moves `delivery_state`; until then events wait as `pending`.
"""

from django.db import models
from django.db.models import Q

from payments.models import ClientApp
from smartpay.ids import PrefixedIdField


class DeliveryState(models.TextChoices):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class OutgoingEvent(models.Model):
    id = PrefixedIdField("evt")
    client_app = models.ForeignKey(ClientApp, on_delete=models.CASCADE, related_name="outgoing_events")
    type = models.CharField(max_length=60)
    data = models.JSONField(default=dict)
    # Same (type, dedupe_key) twice is one event: a job that runs again does not notify again.
    dedupe_key = models.CharField(max_length=120, null=True, blank=True)
    delivery_state = models.CharField(max_length=12, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["type", "dedupe_key"], condition=Q(dedupe_key__isnull=False), name="outgoing_event_dedupe"
            )
        ]
        indexes = [
            models.Index(fields=["client_app", "created_at"], name="outgoing_event_app_created_idx"),
            models.Index(fields=["delivery_state", "created_at"], name="outgoing_event_state_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.id}"
