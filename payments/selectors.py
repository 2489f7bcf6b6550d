"""Read queries of the payments app, shared by the API and the admin."""

from django.db.models import QuerySet

from payments.models import ClientApp, Customer


def customer_list(*, client_app: ClientApp, external_id: str | None = None, email: str | None = None) -> QuerySet:
    queryset = Customer.objects.filter(client_app=client_app)
    if external_id is not None:
        queryset = queryset.filter(external_id=external_id)
    if email is not None:
        queryset = queryset.filter(email__iexact=email)
    return queryset


def customer_get(*, client_app: ClientApp, customer_id: str) -> Customer:
    """The app's own customer, or Customer.DoesNotExist (another app's id looks just like a missing one)."""
    return Customer.objects.get(client_app=client_app, pk=customer_id)
