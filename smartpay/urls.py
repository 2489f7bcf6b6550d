from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from notifications.email_tracking import PostmarkTrackingView
from payments.views import checkout_return
from payments.webhook_views import culqi_webhook, mercadopago_webhook
from reporting.metrics import prometheus_metrics
from smartpay import health, staff_security
from smartpay.api.errors import problem_response

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    # Two-factor sign-in for staff (before the admin, which would take the path as an app label).
    path("admin/2fa/", include(staff_security.urlpatterns)),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/v1/", include("payments.api.urls")),
    path("api/v1/", include("credits.api.urls")),
    path("api/v1/", include("billing.api.urls")),
    path("api/v1/", include("notifications.api.urls")),
    path("api/v1/", include("reporting.api.urls")),
    # Prometheus scrape endpoint (token or allowed networks): reporting/metrics.py
    path("metrics", prometheus_metrics, name="metrics"),
    path("checkout/return/<str:payment_id>", checkout_return, name="checkout-return"),
    path("webhooks/mercadopago", mercadopago_webhook, name="webhook-mercadopago"),
    path("webhooks/culqi", culqi_webhook, name="webhook-culqi"),
    # Postmark's bounce/complaint webhook (anymail, basic auth ANYMAIL_WEBHOOK_SECRET): notifications/email_tracking.py
    path("anymail/postmark/tracking/", PostmarkTrackingView.as_view(), name="anymail-postmark-tracking"),
]


def api_not_found(request, *args, **kwargs):
    """Any other path under /api/ (a mistyped URL, an empty id) is a problem+json 404, with or without DEBUG."""
    return problem_response(
        status=404,
        code="not_found",
        title="Not found",
        detail=f"No API resource at {request.path}. The API reference is at /api/docs/.",
    )


if settings.GATEWAY_MODE == "sandbox":
    # Gateway simulators that speak Culqi's and Mercado Pago's HTTP; absent (404) in live mode.
    urlpatterns.append(path("sandbox/", include("payments.gateways.simulator.urls")))

urlpatterns.append(re_path(r"^api/", api_not_found))

admin.site.site_header = "SmartPay administration"
admin.site.site_title = "SmartPay"


def _wants_problem(request) -> bool:
    return not request.path.startswith("/admin/")


def handler404(request, exception=None):
    if _wants_problem(request):
        return problem_response(status=404, code="not_found", title="Not found", detail="No such resource.")
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def handler500(request):
    if _wants_problem(request):
        return problem_response(
            status=500,
            code="internal_error",
            title="Internal server error",
            detail="Something went wrong on our side. Quote the request_id when reporting it.",
        )
    from django.views.defaults import server_error

    return server_error(request)
