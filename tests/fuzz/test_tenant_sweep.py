"""Tenant sweep: every API route with an object id, found from the URL configuration (so a new
route is swept without anyone listing it), called with every method as another client app.

App A owns one object of every kind; app B calls each route with A's ids. Every method the route
serves answers 404, exactly as for an id that does not exist; a method the route does not serve
answers exactly what it answers for a non-existent id, so no status reveals that A's object exists.
"""

import pytest
from django.test import TestCase
from django.urls import get_resolver
from django.urls.resolvers import URLResolver
from rest_framework.test import APIClient

from billing.models import Invoice
from billing.services import billing_profile_set
from notifications.models import OutgoingEvent, PushSubscription
from payments.models import Customer, PaymentMethod
from payments.services.clients import api_key_issue, client_app_create
from reporting.models import Report
from tests.culqi_wire import culqi_on_the_wire

pytestmark = pytest.mark.django_db

METHODS = ["get", "post", "put", "patch", "delete"]
# Which kind of object each URL parameter names. A new parameter fails the sweep until it is added.
PARAMETER_KINDS = {
    "customer_id": "customer",
    "payment_id": "payment",
    "payment_method_id": "payment_method",
    "invoice_id": "invoice",
    "event_id": "event",
    "subscription_id": "push_subscription",
    "report_id": "report",
}
# Routes whose GET is a 404 even for the owner in this world (nothing configured there yet).
OWNER_MAY_NOT_HAVE = {"api/v1/customers/<str:customer_id>/auto-renewal"}


def id_routes():
    def walk(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            else:
                yield prefix + str(pattern.pattern), pattern

    return [
        (route, pattern)
        for route, pattern in walk(get_resolver().url_patterns)
        if route.startswith("api/v1/") and pattern.pattern.converters
    ]


def client_for(app) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_issue(client_app=app, label='sweep').raw_key}")
    return client


@pytest.fixture
def world(settings):
    """App A's objects, one of each kind, made the way A's own calls make them."""
    app_a = client_app_create(name="Tenant A", webhook_url="https://a.example/hooks")
    api_a = client_for(app_a)
    customer = Customer.objects.create(client_app=app_a, email="ana@example.pe", name="Ana Quispe")
    billing_profile_set(customer=customer, document_type="DNI", document_number="45678912", legal_name="ANA")
    with culqi_on_the_wire(settings), TestCase.captureOnCommitCallbacks(execute=True):
        response = api_a.post(
            "/api/v1/payments",
            {
                "amount": 11800,
                "currency": "PEN",
                "customer": customer.pk,
                "source": {"gateway": "culqi", "token": "tkn_test_visa"},
            },
            format="json",
            HTTP_IDEMPOTENCY_KEY="sweep-pay",
        )
    assert response.status_code == 201 and response.json()["status"] == "succeeded", response.json()
    payment_id = response.json()["id"]
    method = PaymentMethod.objects.create(client_app=app_a, customer=customer, brand="visa", last4="1111")
    subscription = PushSubscription.objects.create(
        customer=customer, endpoint="https://push.example/sub/1", p256dh="BKey", auth="auth"
    )
    report = Report.objects.create(
        client_app=app_a, period_start="2026-11-01", period_end="2026-11-30", currency="PEN", requested_via="api"
    )
    objects = {
        "customer": customer.pk,
        "payment": payment_id,
        "payment_method": method.pk,
        "invoice": Invoice.objects.get(payment_id=payment_id).pk,
        "event": OutgoingEvent.objects.filter(client_app=app_a).first().pk,
        "push_subscription": subscription.pk,
        "report": report.pk,
    }
    return api_a, objects


def fill(route: str, pattern, ids: dict) -> str:
    path = "/" + route
    for name in pattern.pattern.converters:
        path = path.replace(f"<str:{name}>", ids[PARAMETER_KINDS[name]])
    return path


def allowed_methods(pattern) -> set[str]:
    view_class = getattr(pattern.callback, "cls", None) or getattr(pattern.callback, "view_class", None)
    return {method for method in METHODS if view_class is not None and hasattr(view_class, method)}


def test_every_route_with_an_id_is_known_to_the_sweep():
    names = {name for _, pattern in id_routes() for name in pattern.pattern.converters}
    assert names <= set(PARAMETER_KINDS), f"add these parameters to PARAMETER_KINDS: {names - set(PARAMETER_KINDS)}"
    assert len(id_routes()) >= 20


def test_another_app_gets_404_on_every_route_and_method(world, settings):
    api_a, ids = world
    api_b = client_for(client_app_create(name="Tenant B"))
    missing = {kind: f"{value.split('_')[0]}_doesnotexist0000000000000000" for kind, value in ids.items()}
    findings = []
    with culqi_on_the_wire(settings):
        for route, pattern in id_routes():
            owned, nowhere = fill(route, pattern, ids), fill(route, pattern, missing)
            served = allowed_methods(pattern)
            assert served, f"{route}: no view methods found"
            if "get" in served and route not in OWNER_MAY_NOT_HAVE:
                status = api_a.get(owned).status_code
                assert status != 404, f"{route}: the owner's own object is not found ({status}); the world is wrong"
            for method in METHODS:
                body = {} if method in ("post", "put", "patch") else None
                headers = {"HTTP_IDEMPOTENCY_KEY": f"sweep-{method}-{route}"}
                status = getattr(api_b, method)(owned, body, format="json", **headers).status_code
                if method in served:
                    if status != 404:
                        findings.append(f"{method.upper()} {owned}: {status}, expected 404")
                else:
                    baseline = getattr(api_b, method)(nowhere, body, format="json", **headers).status_code
                    if status != baseline:
                        findings.append(f"{method.upper()} {owned}: {status} but {baseline} for a missing id")
    assert findings == [], "\n".join(findings)
