from django.db import models

from payments.enums import Currency
from payments.models.payments import Payment
from smartpay.ids import PrefixedIdField


class StrayCharge(models.Model):
    """Money a gateway holds for one of our payments that the payment does not own.

    * `duplicate`: a second charge for a payment that already has one (a late answer or webhook
      from the gateway it failed over from, a payer's second try): the payment keeps its first
      success and this charge is refunded automatically at its gateway.
    * `final_payment`: a charge for a payment that is `failed` or `canceled` here (e.g. paid on a
      hosted page after the session was given up). It is raised for staff, who refund it with one
      click in the admin; it is never silently ignored.

    Recorded once per gateway charge (unique gateway + id), whichever path reported it.
    """

    DUPLICATE = "duplicate"
    FINAL_PAYMENT = "final_payment"
    REASONS = [(DUPLICATE, "Second charge for the payment"), (FINAL_PAYMENT, "Charge for a final payment")]

    OPEN = "open"
    REFUNDING = "refunding"
    REFUNDED = "refunded"
    REFUND_FAILED = "refund_failed"
    STATUSES = [(OPEN, "Open"), (REFUNDING, "Refunding"), (REFUNDED, "Refunded"), (REFUND_FAILED, "Refund failed")]

    id = PrefixedIdField("stray")
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="stray_charges")
    gateway = models.CharField(max_length=20)
    gateway_payment_id = models.CharField(max_length=120)
    amount = models.BigIntegerField(help_text="Minor units the gateway charged.")
    currency = models.CharField(max_length=3, choices=Currency.choices)
    gateway_status = models.CharField(max_length=30, blank=True)
    reason = models.CharField(max_length=20, choices=REASONS)
    status = models.CharField(max_length=20, choices=STATUSES, default=OPEN)
    detected_via = models.CharField(max_length=30, blank=True)
    gateway_refund_id = models.CharField(max_length=120, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    resolved_by = models.CharField(max_length=120, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["gateway", "gateway_payment_id"], name="stray_charge_once"),
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="stray_charge_amount_positive"),
        ]
        permissions = [("refund_straycharge", "Can refund stray charges at the gateway")]

    def __str__(self) -> str:
        return f"{self.gateway}:{self.gateway_payment_id}"
