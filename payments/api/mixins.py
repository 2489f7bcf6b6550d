"""View mixins other apps' APIs reuse to reach a client app's customers."""

from django.http import Http404

from payments import selectors
from payments.models import Customer
from smartpay.api.base import TenantScopedMixin


class CustomerScopedMixin(TenantScopedMixin):
    """`get_customer` answers 404 for another app's customer, exactly as for a missing one."""

    def get_customer(self, customer_id: str) -> Customer:
        try:
            return selectors.customer_get(client_app=self.client_app, customer_id=customer_id)
        except Customer.DoesNotExist:
            raise Http404 from None

    def actor(self) -> str:
        """Who did it, for audit rows: the API key's visible prefix."""
        api_key = getattr(self.request, "api_key", None)
        return f"api_key:{api_key.prefix}" if api_key else ""
