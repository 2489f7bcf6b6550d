"""Hosted checkout end to end: the payer pays on the simulator's page and comes back through SmartPay."""

import pytest
import requests

from payments.models import RoutingRule

pytestmark = pytest.mark.django_db(transaction=True)


def create_checkout(api, key):
    response = api.post(
        "/api/v1/payments",
        {
            "amount": 5000,
            "currency": "PEN",
            "email": "ana@example.com",
            "description": "Annual plan",
            "checkout": True,
            "return_url": "https://shop.example/thanks?order=42",
        },
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )
    assert response.status_code == 201, response.json()
    return response.json()


@pytest.mark.parametrize(
    ("gateway", "field", "choice", "status"),
    [
        ("culqi", "card", "approve", "succeeded"),
        ("culqi", "card", "insufficient_funds", "pending"),  # a decline is not final: the payer may try again
        ("mercadopago", "outcome", "APRO", "succeeded"),
        ("mercadopago", "outcome", "FUND", "pending"),
    ],
)
def test_pay_on_the_hosted_page_and_return(api, sandbox, gateway, field, choice, status):
    if gateway == "mercadopago":
        RoutingRule.objects.create(currency="PEN", gateway="mercadopago", priority=1)
        RoutingRule.objects.create(currency="PEN", gateway="culqi", priority=2)
    payment = create_checkout(api, f"co-{gateway}-{choice}")
    assert payment["status"] == "pending" and payment["gateway"] == gateway
    url = payment["next_action"]["url"]
    assert payment["next_action"]["type"] == "redirect" and url.startswith(sandbox)

    page = requests.get(url, timeout=10)
    assert page.status_code == 200 and "<form" in page.text
    paid = requests.post(url, data={field: choice}, allow_redirects=False, timeout=10)
    assert paid.status_code == 302
    back_to_us = paid.headers["Location"]
    assert back_to_us.startswith(f"{sandbox}/checkout/return/{payment['id']}")

    to_shop = requests.get(back_to_us, allow_redirects=False, timeout=10)
    assert to_shop.status_code == 302
    assert to_shop.headers["Location"] == (
        f"https://shop.example/thanks?order=42&payment_id={payment['id']}&status={status}"
    )
    final = api.get(f"/api/v1/payments/{payment['id']}").json()
    assert final["status"] == status
    if status == "succeeded":
        assert final["gateway_payment_id"]
        assert final["next_action"] is None
    else:  # the decline shows, the page stays payable
        assert final["failure"]["decline_code"] == "insufficient_funds"
        assert final["next_action"]["url"] == url


def test_return_without_paying_leaves_the_payment_pending(api, sandbox):
    payment = create_checkout(api, "co-abandoned")
    response = requests.get(f"{sandbox}/checkout/return/{payment['id']}", allow_redirects=False, timeout=10)
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"payment_id={payment['id']}&status=pending")
    canceled = api.post(f"/api/v1/payments/{payment['id']}/cancel", {}, format="json", HTTP_IDEMPOTENCY_KEY="c")
    assert canceled.json()["status"] == "canceled"


def test_cancel_after_the_payer_paid_is_refused_and_the_payment_is_succeeded(api, sandbox):
    payment = create_checkout(api, "co-paid-then-cancel")
    paid = requests.post(payment["next_action"]["url"], data={"card": "approve"}, allow_redirects=False, timeout=10)
    assert paid.status_code == 302  # the payer never comes back through the return URL
    canceled = api.post(f"/api/v1/payments/{payment['id']}/cancel", {}, format="json", HTTP_IDEMPOTENCY_KEY="late")
    assert canceled.status_code == 409
    assert canceled.json()["code"] == "invalid_payment_state"
    assert api.get(f"/api/v1/payments/{payment['id']}").json()["status"] == "succeeded"
