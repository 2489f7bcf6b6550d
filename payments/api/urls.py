from django.urls import path

from payments.api import confirm_views, views
from payments.api import payment_views as pv

urlpatterns = [
    path("customers", views.CustomerListCreateView.as_view(), name="customer-list"),
    path("customers/<str:customer_id>", views.CustomerDetailView.as_view(), name="customer-detail"),
    path("customers/<str:customer_id>/payments", pv.CustomerPaymentsView.as_view(), name="customer-payments"),
    path(
        "customers/<str:customer_id>/payment-methods",
        pv.PaymentMethodListCreateView.as_view(),
        name="customer-payment-methods",
    ),
    path(
        "customers/<str:customer_id>/payment-methods/<str:payment_method_id>",
        pv.PaymentMethodDetailView.as_view(),
        name="customer-payment-method-detail",
    ),
    path("payments", pv.PaymentListCreateView.as_view(), name="payment-list"),
    path("payments/<str:payment_id>", pv.PaymentDetailView.as_view(), name="payment-detail"),
    path("payments/<str:payment_id>/capture", pv.PaymentCaptureView.as_view(), name="payment-capture"),
    path("payments/<str:payment_id>/cancel", pv.PaymentCancelView.as_view(), name="payment-cancel"),
    path("payments/<str:payment_id>/confirm", confirm_views.PaymentConfirmView.as_view(), name="payment-confirm"),
    path("payments/<str:payment_id>/refunds", pv.PaymentRefundsView.as_view(), name="payment-refunds"),
    path("gateways", pv.GatewayListView.as_view(), name="gateway-list"),
]
