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


def payment_list(*, client_app: ClientApp) -> QuerySet:
    from payments.models import Payment

    return (
        Payment.objects.filter(client_app=client_app)
        .select_related("customer", "payment_method")
        .prefetch_related("attempts")
    )


def payment_get(*, client_app: ClientApp, payment_id: str):
    """The app's own payment, or Payment.DoesNotExist."""
    return payment_list(client_app=client_app).get(pk=payment_id)


def payment_method_list(*, customer: Customer) -> QuerySet:
    from payments.models import PaymentMethod

    return PaymentMethod.objects.filter(customer=customer, deleted_at__isnull=True).prefetch_related("gateway_cards")
