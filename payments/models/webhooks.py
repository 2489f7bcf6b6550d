from django.db import models

from payments.models.payments import Payment
from smartpay.ids import PrefixedIdField


class WebhookEvent(models.Model):
    """A delivery from a gateway, stored raw before anything is done with it.

    Unique per (gateway, event id): a repeated delivery is acknowledged and changes nothing.
    The body is never trusted for status: the worker re-fetches the object from the gateway.
    """

    RECEIVED = "received"
    PROCESSED = "processed"
    UNMATCHED = "unmatched"  # no payment of ours matches: kept and shown for reconciliation
    IGNORED = "ignored"  # a topic we do not act on
    FAILED = "failed"  # retries exhausted; staff can "retry now" from the admin
    STATUSES = [(s, s) for s in (RECEIVED, PROCESSED, UNMATCHED, IGNORED, FAILED)]

    id = PrefixedIdField("whe")
    gateway = models.CharField(max_length=20)
    event_id = models.CharField(max_length=200)
    event_type = models.CharField(max_length=80, blank=True)
    resource_id = models.CharField(max_length=120, blank=True)
    raw_body = models.TextField(blank=True)
    query = models.JSONField(default=dict, blank=True)
    headers = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=12, choices=STATUSES, default=RECEIVED)
    payment = models.ForeignKey(Payment, null=True, blank=True, on_delete=models.SET_NULL, related_name="webhooks")
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["gateway", "event_id"], name="webhook_event_unique")]
        indexes = [models.Index(fields=["status", "received_at"], name="webhook_status_idx")]
        permissions = [("retry_webhookevent", "Can retry webhook events")]

    def __str__(self) -> str:
        return f"{self.gateway}:{self.event_id}"


class RoutingRule(models.Model):
    """Which gateways take a currency, in order, optionally limited to an amount range (minor units)."""

    currency = models.CharField(max_length=3)
    gateway = models.CharField(max_length=20)
    priority = models.PositiveSmallIntegerField(default=10, help_text="Lower goes first.")
    enabled = models.BooleanField(default=True)
    min_amount = models.BigIntegerField(null=True, blank=True, help_text="Minor units, inclusive.")
    max_amount = models.BigIntegerField(null=True, blank=True, help_text="Minor units, inclusive.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["currency", "priority", "gateway"]
        constraints = [
            models.UniqueConstraint(fields=["currency", "gateway"], name="routing_rule_once_per_gateway"),
        ]

    def __str__(self) -> str:
        return f"{self.currency} → {self.gateway} (#{self.priority})"

    def accepts(self, amount: int | None) -> bool:
        if amount is None:
            return True
        if self.min_amount is not None and amount < self.min_amount:
            return False
        return not (self.max_amount is not None and amount > self.max_amount)
