from django.urls import path

from credits.api import views

urlpatterns = [
    path("plans", views.PlanListView.as_view(), name="plan-list"),
    path(
        "customers/<str:customer_id>/credit-purchases",
        views.CreditPurchaseCreateView.as_view(),
        name="customer-credit-purchases",
    ),
    path("customers/<str:customer_id>/credits", views.CreditBalanceView.as_view(), name="customer-credits"),
    path(
        "customers/<str:customer_id>/credit-consumptions",
        views.CreditConsumptionCreateView.as_view(),
        name="customer-credit-consumptions",
    ),
    path("customers/<str:customer_id>/credit-ledger", views.CreditLedgerView.as_view(), name="customer-credit-ledger"),
    path("customers/<str:customer_id>/auto-renewal", views.AutoRenewalView.as_view(), name="customer-auto-renewal"),
]
