from django.db import models


class PaymentStatus(models.TextChoices):
    PENDING = "pending"
    PROCESSING = "processing"
    REQUIRES_ACTION = "requires_action"
    AUTHORIZED = "authorized"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


class Currency(models.TextChoices):
    PEN = "PEN", "Peruvian sol"
    USD = "USD", "US dollar"


class AttemptOperation(models.TextChoices):
    CHARGE = "charge"
    CAPTURE = "capture"
    CANCEL = "cancel"
    CHECKOUT = "checkout"
    SYNC = "sync"


class AttemptOutcome(models.TextChoices):
    STARTED = "started"  # committed before the call; still here after a crash = outcome unknown
    SUCCEEDED = "succeeded"
    AUTHORIZED = "authorized"
    REQUIRES_ACTION = "requires_action"
    PENDING = "pending"
    DECLINED = "declined"
    UNAVAILABLE = "unavailable"  # not processed: safe to retry or fail over
    UNKNOWN = "unknown"  # may have been processed: settle by asking the gateway
    INVALID = "invalid"
    ERROR = "error"  # configuration/auth


class RefundStatus(models.TextChoices):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class PaymentPurpose(models.TextChoices):
    GENERIC = "generic"
    CREDIT_PURCHASE = "credit_purchase"
