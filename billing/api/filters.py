import django_filters

from billing.enums import DocumentType
from billing.models import Invoice


class InvoiceFilter(django_filters.FilterSet):
    customer = django_filters.CharFilter(field_name="customer_id")
    payment = django_filters.CharFilter(field_name="payment_id")
    document_type = django_filters.ChoiceFilter(choices=DocumentType.choices)

    class Meta:
        model = Invoice
        fields = ["customer", "payment", "document_type"]
