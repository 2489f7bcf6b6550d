"""Outgoing events: what client apps are told (`credits.expiring`, `auto_renewal.failed`, …).

Rows are written inside the transaction of the change they describe (an outbox), so an event
exists exactly when its change committed. Delivery (signed POSTs with retries) lands later and
only moves `delivery_state`; until then events wait as `pending`.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from payments.models import ClientApp
from smartpay.ids import PrefixedIdField


class DeliveryState(models.TextChoices):
    PENDING = "pending"  # due at `next_attempt_at` (first try, or a retry on the schedule)
    DELIVERED = "delivered"  # the client app answered 2xx
    FAILED = "failed"  # every try of the schedule failed; staff or the app may redeliver
    SKIPPED = "skipped"  # the app had no webhook URL (or delivery disabled) when the event was due


class OutgoingEvent(models.Model):
    id = PrefixedIdField("evt")
    client_app = models.ForeignKey(ClientApp, on_delete=models.CASCADE, related_name="outgoing_events")
    type = models.CharField(max_length=60)
    data = models.JSONField(default=dict)
    # Same (type, dedupe_key) twice is one event: a job that runs again does not notify again.
    dedupe_key = models.CharField(max_length=120, null=True, blank=True)
    # The object the event is about (pay_…, re_…, inv_…, cus_…): events of one object are delivered
    # to an app in creation order (a payment.refunded never overtakes its payment.succeeded).
    object_id = models.CharField(max_length=60, blank=True, db_index=True)
    delivery_state = models.CharField(max_length=12, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
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
            models.Index(fields=["delivery_state", "next_attempt_at"], name="outgoing_event_due_idx"),
            models.Index(fields=["client_app", "object_id", "created_at"], name="outgoing_event_object_idx"),
        ]
        permissions = [("redeliver_outgoingevent", "Can redeliver events to client apps")]

    def __str__(self) -> str:
        return f"{self.type} {self.id}"


class DeliveryAttempt(models.Model):
    """One POST of an event to its app's webhook URL: what was sent where, and what came back."""

    id = PrefixedIdField("evdel")
    event = models.ForeignKey(OutgoingEvent, on_delete=models.CASCADE, related_name="delivery_attempts")
    number = models.PositiveSmallIntegerField()
    url = models.CharField(max_length=500)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    response_excerpt = models.CharField(max_length=500, blank=True, help_text="The first 500 characters.")
    error = models.CharField(max_length=300, blank=True, help_text="Timeout, connection error, refused URL…")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["event", "number"]
        constraints = [models.UniqueConstraint(fields=["event", "number"], name="delivery_attempt_number_unique")]

    def __str__(self) -> str:
        return f"{self.event_id} #{self.number}"


# --- Alerts: problems staff must see (admin index panel, one email per new alert) -------------------


class AlertSeverity(models.TextChoices):
    INFO = "info"  # shown on the panel, not emailed
    WARNING = "warning"
    CRITICAL = "critical"


class AlertStatus(models.TextChoices):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"  # a person is on it; still listed until resolved
    RESOLVED = "resolved"


class AlertResolution(models.TextChoices):
    AUTO = "auto"  # its rule found the condition gone (breaker closed, issues resolved, …)
    STAFF = "staff"


class Alert(models.Model):
    """One problem staff must not miss, raised by `notifications.alerts.alert_raise`.

    Unresolved alerts are unique per (kind, dedupe_key): raising the same problem again bumps
    `count` and `last_seen_at` on the same row. Once resolved, the same problem raised again is a
    new alert (and is emailed again). Resolved rows are kept as history.
    """

    id = PrefixedIdField("alert")
    kind = models.CharField(max_length=60)
    dedupe_key = models.CharField(max_length=200)
    severity = models.CharField(max_length=10, choices=AlertSeverity.choices, default=AlertSeverity.WARNING)
    title = models.CharField(max_length=200)
    detail = models.TextField(blank=True)
    context = models.JSONField(default=dict, blank=True, help_text="Ids of what it is about (payment, gateway, …).")
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    count = models.PositiveIntegerField(default=1, help_text="Times raised while unresolved.")
    status = models.CharField(max_length=12, choices=AlertStatus.choices, default=AlertStatus.OPEN)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolution = models.CharField(max_length=5, choices=AlertResolution.choices, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True, help_text="Claimed once by the email task.")

    class Meta:
        ordering = ["-last_seen_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "dedupe_key"], condition=Q(resolved_at__isnull=True), name="alert_unresolved_once"
            ),
            models.CheckConstraint(
                condition=(Q(status=AlertStatus.RESOLVED) & Q(resolved_at__isnull=False))
                | (~Q(status=AlertStatus.RESOLVED) & Q(resolved_at__isnull=True)),
                name="alert_resolved_at_with_status",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "last_seen_at"], name="alert_status_seen_idx"),
            models.Index(fields=["kind", "status"], name="alert_kind_status_idx"),
        ]

    def __str__(self) -> str:
        return self.title


# --- Payers: preferences, emails, push subscriptions ----------------------------------------------


class Language(models.TextChoices):
    ES = "es", "Español"
    EN = "en", "English"


class CustomerPreferences(models.Model):
    """How a client app's customer (the payer) wants to hear from SmartPay.

    Receipts and invoices are always emailed; `email_alerts` covers low balance, credits expiring
    or expired and a failed automatic renewal. `low_balance_threshold` (credits) decides when
    `credits.low_balance` is told; null means `CREDITS_LOW_BALANCE_THRESHOLD`.
    """

    customer = models.OneToOneField("payments.Customer", on_delete=models.CASCADE, related_name="preferences")
    language = models.CharField(max_length=2, choices=Language.choices, default=Language.ES)
    email_alerts = models.BooleanField(default=True)
    extra_billing_email = models.EmailField(blank=True, help_text="Also receives receipts and invoices.")
    low_balance_threshold = models.PositiveIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"preferences of {self.customer_id}"


class EmailKind(models.TextChoices):
    PAYMENT_RECEIPT = "payment_receipt"
    REFUND_RECEIPT = "refund_receipt"
    CREDITS_LOW_BALANCE = "credits_low_balance"
    CREDITS_EXPIRING = "credits_expiring"
    CREDITS_EXPIRED = "credits_expired"
    AUTO_RENEWAL_FAILED = "auto_renewal_failed"
    INVOICE = "invoice"


class SentEmail(models.Model):
    """One email to one recipient about one thing: at most one per (kind, subject key, recipient),
    claimed before sending, so a job that runs twice never emails twice."""

    PENDING = "pending"
    SENDING = "sending"  # claimed by one sender (a conditional UPDATE from pending)
    SENT = "sent"
    FAILED = "failed"
    SUPPRESSED = "suppressed"  # the address bounced or complained: not sent
    STATUSES = [
        (PENDING, "Pending"),
        (SENDING, "Sending"),
        (SENT, "Sent"),
        (FAILED, "Failed"),
        (SUPPRESSED, "Suppressed"),
    ]

    id = PrefixedIdField("eml")
    kind = models.CharField(max_length=30, choices=EmailKind.choices)
    subject_key = models.CharField(max_length=120, help_text="What it is about, e.g. an event or payment id.")
    recipient = models.EmailField()
    customer = models.ForeignKey("payments.Customer", null=True, blank=True, on_delete=models.SET_NULL)
    status = models.CharField(max_length=12, choices=STATUSES, default=PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    provider_message_id = models.CharField(max_length=120, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "subject_key", "recipient"], name="sent_email_once"),
        ]
        indexes = [models.Index(fields=["status", "created_at"], name="sent_email_status_idx")]

    def __str__(self) -> str:
        return f"{self.kind} to {self.recipient}"


class SuppressedAddress(models.Model):
    """An address that bounced hard or complained (Postmark through anymail's tracking webhook):
    nothing more is sent to it until staff lift the suppression."""

    address = models.EmailField(unique=True)
    reason = models.CharField(max_length=30, help_text="bounced, complained, …")
    detail = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.address


class PushSubscription(models.Model):
    """A payer's browser Web Push subscription (VAPID), registered by the client app."""

    id = PrefixedIdField("push")
    customer = models.ForeignKey("payments.Customer", on_delete=models.CASCADE, related_name="push_subscriptions")
    endpoint = models.URLField(max_length=1000)
    p256dh = models.CharField(max_length=200)
    auth = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["customer", "endpoint"], name="push_subscription_once")]

    def __str__(self) -> str:
        return self.endpoint[:60]
