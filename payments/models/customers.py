from django.db import models
from django.db.models import Q

from payments.models.clients import ClientApp
from smartpay.ids import PrefixedIdField


class Customer(models.Model):
    id = PrefixedIdField("cus")
    client_app = models.ForeignKey(ClientApp, on_delete=models.PROTECT, related_name="customers")
    external_id = models.CharField(max_length=120, null=True, blank=True)
    email = models.EmailField(blank=True)
    name = models.CharField(max_length=200, blank=True)
    phone = models.CharField(max_length=40, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["client_app", "external_id"],
                condition=Q(external_id__isnull=False),
                name="customer_external_id_unique_per_app",
            )
        ]
        indexes = [models.Index(fields=["client_app", "email"], name="customer_app_email_idx")]

    def __str__(self) -> str:
        return self.name or self.email or self.id
