import django_filters

from payments.enums import Currency, PaymentStatus
from payments.models import Payment
from smartpay.api.filters import BoundedIsoDateTimeFilter


class PaymentFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=PaymentStatus.choices)
    customer = django_filters.CharFilter(field_name="customer_id")
    gateway = django_filters.CharFilter()
    currency = django_filters.ChoiceFilter(choices=Currency.choices)
    created_gte = BoundedIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_lt = BoundedIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Payment
        fields = ["status", "customer", "gateway", "currency", "created_gte", "created_lt"]
