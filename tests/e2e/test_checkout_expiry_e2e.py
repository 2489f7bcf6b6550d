"""A hosted checkout nobody paid is failed by the settle job when its session expires, after the
session is closed at the gateway; one paid just before is recorded as paid instead.

End to end against both simulators. Time is moved by passing `now=` to `settle_due_payments`
(the session's expiry is ours: `checkout_expires_at`).
"""

from datetime import timedelta

import pytest
import requests

from billing.enums import DocumentType
from billing.models import Invoice
from payments.gateways.simulator.models import SimCharge
from payments.models import Payment, RoutingRule
from payments.services.settlement import settle_due_payments

pytestmark = pytest.mark.django_db(transaction=True)

GATEWAYS = ["culqi", "mercadopago"]
FIELD = {"culqi": ("card", "approve"), "mercadopago": ("outcome", "APRO")}
MONEY = {"culqi": "captured", "mercadopago": "approved"}


def open_checkout(api, gateway: str) -> tuple[str, str]:
    """A pending hosted checkout at `gateway`: (payment id, the page the payer is sent to)."""
    if gateway == "mercadopago":
        RoutingRule.objects.create(currency="PEN", gateway="mercadopago", priority=1)
        RoutingRule.objects.create(currency="PEN", gateway="culqi", priority=2)
    body = {"amount": 5000, "currency": "PEN", "email": "ana@example.com", "description": "Annual plan"}
    response = api.post(
        "/api/v1/payments",
        {**body, "checkout": True, "return_url": "https://shop.example/thanks"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=f"expiry-{gateway}",
    )
    assert response.status_code == 201, response.json()
    created = response.json()
    assert (created["status"], created["gateway"]) == ("pending", gateway)
    return created["id"], created["next_action"]["url"]


def pay(url: str, gateway: str) -> requests.Response:
    field, approve = FIELD[gateway]
    return requests.post(url, data={field: approve}, allow_redirects=False, timeout=10)


def money_at_the_gateway(gateway: str, payment_id: str) -> list[str]:
    charges = SimCharge.objects.filter(gateway=gateway).order_by("pk")
    return [c.status for c in charges if (c.metadata or {}).get("smartpay_payment_id") == payment_id]


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_an_unpaid_checkout_is_closed_and_failed_when_its_session_expires(api, sandbox, gateway):
    payment_id, url = open_checkout(api, gateway)
    expires_at = Payment.objects.get(pk=payment_id).checkout_expires_at
    assert settle_due_payments(now=expires_at - timedelta(minutes=1)) == {}  # still open: not due

    assert settle_due_payments(now=expires_at + timedelta(minutes=1)) == {"expired": 1}

    final = api.get(f"/api/v1/payments/{payment_id}").json()
    assert final["status"] == "failed", final
    assert final["failure"]["code"] == "checkout_expired"
    assert final["next_action"] is None
    page = requests.get(url, timeout=10)
    assert page.status_code == 410 and "<form" not in page.text  # closed at the gateway first
    refused = pay(url, gateway)
    assert refused.status_code == 410
    assert MONEY[gateway] not in money_at_the_gateway(gateway, payment_id)
    assert not Invoice.objects.filter(payment_id=payment_id).exists()
    assert settle_due_payments(now=expires_at + timedelta(hours=2)) == {}  # final: never asked again


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_a_checkout_paid_just_before_expiry_succeeds_instead(api, sandbox, gateway):
    payment_id, url = open_checkout(api, gateway)
    expires_at = Payment.objects.get(pk=payment_id).checkout_expires_at
    paid = pay(url, gateway)
    assert paid.status_code == 302  # the payer never comes back through the return URL
    assert Payment.objects.get(pk=payment_id).status == "pending"  # and no webhook told us

    assert settle_due_payments(now=expires_at + timedelta(minutes=1)) == {"settled": 1}

    final = api.get(f"/api/v1/payments/{payment_id}").json()
    assert final["status"] == "succeeded", final
    assert final["failure"] is None and final["gateway_payment_id"]
    assert money_at_the_gateway(gateway, payment_id) == [MONEY[gateway]]
    invoices = Invoice.objects.filter(payment_id=payment_id).exclude(document_type=DocumentType.CREDIT_NOTE)
    assert [invoice.total for invoice in invoices] == [5000]
