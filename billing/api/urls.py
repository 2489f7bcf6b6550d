from django.urls import path

from billing.api import views

urlpatterns = [
    path(
        "customers/<str:customer_id>/billing-profile",
        views.BillingProfileView.as_view(),
        name="customer-billing-profile",
    ),
    path("invoices", views.InvoiceListView.as_view(), name="invoice-list"),
    path("invoices/<str:invoice_id>", views.InvoiceDetailView.as_view(), name="invoice-detail"),
    path("invoices/<str:invoice_id>/pdf", views.InvoicePdfView.as_view(), name="invoice-pdf"),
    path("invoices/<str:invoice_id>/xml", views.InvoiceXmlView.as_view(), name="invoice-xml"),
]
