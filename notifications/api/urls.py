from django.urls import path

from notifications.api import push_views, views

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
    path(
        "customers/<str:customer_id>/preferences",
        views.CustomerPreferencesView.as_view(),
        name="customer-preferences",
    ),
    # Web Push subscriptions of a customer (notifications/api/push_views.py)
    path(
        "customers/<str:customer_id>/push-subscriptions",
        push_views.PushSubscriptionListCreateView.as_view(),
        name="customer-push-subscriptions",
    ),
    path(
        "customers/<str:customer_id>/push-subscriptions/<str:subscription_id>",
        push_views.PushSubscriptionDetailView.as_view(),
        name="customer-push-subscription-detail",
    ),
    path("push/vapid-public-key", push_views.VapidPublicKeyView.as_view(), name="push-vapid-public-key"),
]
