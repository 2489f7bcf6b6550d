from django.urls import path

from bench.perf.bare.core import views

urlpatterns = [
    path("api/v1/payments", views.PaymentCreate.as_view()),
    path("api/v1/customers/<str:customer_id>/credit-consumptions", views.CreditConsume.as_view()),
    path("webhooks/mercadopago", views.WebhookReceive.as_view()),
]
