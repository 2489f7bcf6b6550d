"""Read queries of the billing app, shared by the API and the admin."""

from django.db.models import QuerySet

from billing.models import BillingProfile, Invoice
from payments.models import ClientApp, Customer


def billing_profile_get(*, customer: Customer) -> BillingProfile:
    """The customer's profile, or BillingProfile.DoesNotExist."""
    return BillingProfile.objects.get(customer=customer)


def invoice_list(*, client_app: ClientApp) -> QuerySet:
    """The app's documents (invoices and credit notes), with their lines."""
    return Invoice.objects.filter(client_app=client_app).prefetch_related("lines")


def invoice_get(*, client_app: ClientApp, invoice_id: str) -> Invoice:
    """The app's own document, or Invoice.DoesNotExist (another app's id looks like a missing one)."""
    return invoice_list(client_app=client_app).select_related("credited_invoice").get(pk=invoice_id)
