from django.urls import path

from notifications.api import views

urlpatterns = [
    path("events", views.EventListView.as_view(), name="event-list"),
    path("events/<str:event_id>", views.EventDetailView.as_view(), name="event-detail"),
    path("events/<str:event_id>/redeliver", views.EventRedeliverView.as_view(), name="event-redeliver"),
    path("webhook-endpoint", views.WebhookEndpointView.as_view(), name="webhook-endpoint"),
    path(
        "webhook-endpoint/rotate-secret",
        views.WebhookSecretRotateView.as_view(),
        name="webhook-endpoint-rotate-secret",
    ),
]
