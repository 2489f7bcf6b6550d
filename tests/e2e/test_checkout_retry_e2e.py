"""Hosted checkout is not over at the first decline; canceling closes the session at the gateway first.

api-contract.md: "A hosted checkout stays `pending` while its gateway session can still be paid (a
declined try shows in `failure` but is not final); it fails when the session expires or is canceled."

For both simulators: the payer is declined and then pays on the same page (one charge with money,
one invoice, `succeeded`); a pending checkout is canceled and its page refuses to pay; a checkout paid
before the cancel is not canceled. The last group drives `checkout_expire_at_gateway` directly.
"""

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.conf import settings

from billing.models import Invoice
from payments.gateways.base import ChargeStatus, CheckoutAlreadyPaid
from payments.gateways.simulator.models import SimCharge
from payments.models import Payment, RoutingRule
from payments.services.checkout import checkout_expire_at_gateway

pytestmark = pytest.mark.django_db(transaction=True)

RETURN_URL = "https://shop.example/thanks?order=42"
GATEWAYS = ["culqi", "mercadopago"]
# The page's form field, a declining choice (with its normalised decline code) and an approving one.
PAGE = {
    "culqi": {"field": "card", "decline": "insufficient_funds", "approve": "approve"},
    "mercadopago": {"field": "outcome", "decline": "FUND", "approve": "APRO"},
}
MONEY = {"culqi": "captured", "mercadopago": "approved"}
DECLINED = {"culqi": "declined", "mercadopago": "rejected"}


# --- Helpers ------------------------------------------------------------------------------------------------


def open_checkout(api, gateway: str, key: str) -> dict:
    if gateway == "mercadopago":
        RoutingRule.objects.create(currency="PEN", gateway="mercadopago", priority=1)
        RoutingRule.objects.create(currency="PEN", gateway="culqi", priority=2)
    response = api.post(
        "/api/v1/payments",
        {
            "amount": 5000,
            "currency": "PEN",
            "email": "ana@example.com",
            "description": "Annual plan",
            "checkout": True,
            "return_url": RETURN_URL,
        },
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )
    assert response.status_code == 201, response.json()
    payment = response.json()
    assert payment["status"] == "pending" and payment["gateway"] == gateway
    return payment


def pay(url: str, gateway: str, choice: str) -> requests.Response:
    """The payer submits the hosted page with a test card / outcome."""
    return requests.post(url, data={PAGE[gateway]["field"]: PAGE[gateway][choice]}, allow_redirects=False, timeout=10)


def come_back(sandbox: str, payment: dict, paid: requests.Response) -> str:
    """Follow the gateway's redirect through SmartPay's return URL; the status the shop is told."""
    assert paid.status_code == 302, paid.text[:300]
    back_to_us = paid.headers["Location"]
    assert back_to_us.startswith(f"{sandbox}/checkout/return/{payment['id']}")
    to_shop = requests.get(back_to_us, allow_redirects=False, timeout=10)
    assert to_shop.status_code == 302
    location = urlsplit(to_shop.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == "https://shop.example/thanks"
    query = {key: values[0] for key, values in parse_qs(location.query).items()}
    assert (query["order"], query["payment_id"]) == ("42", payment["id"])
    return query["status"]


def sim_charges(gateway: str, payment_id: str) -> list[str]:
    """The statuses of the charges the simulator made for our payment (both carry our id in metadata)."""
    charges = SimCharge.objects.filter(gateway=gateway).order_by("pk")
    return [c.status for c in charges if (c.metadata or {}).get("smartpay_payment_id") == payment_id]


def session_at_gateway(gateway: str, payment_id: str) -> dict:
    """The checkout session (Culqi order, MP preference) as the simulator's API shows it."""
    checkout_id = Payment.objects.get(pk=payment_id).gateway_checkout_id
    assert checkout_id
    if gateway == "culqi":
        url = f"{settings.CULQI_API_BASE}/v2/orders/{checkout_id}"
        key = settings.CULQI_SECRET_KEY
    else:
        url = f"{settings.MERCADOPAGO_API_BASE}/checkout/preferences/{checkout_id}"
        key = settings.MERCADOPAGO_ACCESS_TOKEN
    response = requests.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def assert_session_closed(gateway: str, payment_id: str, url: str) -> None:
    session = session_at_gateway(gateway, payment_id)
    if gateway == "culqi":
        assert session["state"] in ("deleted", "expired"), session["state"]
    else:
        assert session["expires"] is True, session
        assert datetime.fromisoformat(session["expiration_date_to"]) <= datetime.now(UTC)
    page = requests.get(url, timeout=10)
    assert page.status_code == 410 and "<form" not in page.text
    refused = pay(url, gateway, "approve")
    assert refused.status_code == 410 and "<form" not in refused.text
    assert MONEY[gateway] not in sim_charges(gateway, payment_id)


def cancel(api, payment: dict, key: str):
    return api.post(f"/api/v1/payments/{payment['id']}/cancel", {}, format="json", HTTP_IDEMPOTENCY_KEY=key)


# --- (i) declined, then paid on the same page ------------------------------------------------------------------


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_declined_then_paid_on_the_same_page(api, sandbox, gateway):
    payment = open_checkout(api, gateway, f"retry-{gateway}")
    url = payment["next_action"]["url"]

    told = come_back(sandbox, payment, pay(url, gateway, "decline"))

    after_decline = api.get(f"/api/v1/payments/{payment['id']}").json()
    assert after_decline["status"] == "pending", after_decline
    assert after_decline["failure"] is not None and after_decline["failure"]["decline_code"] == "insufficient_funds"
    assert after_decline["next_action"] == {"type": "redirect", "url": url}  # the payer can be sent back
    assert told == "pending"
    page = requests.get(url, timeout=10)
    assert page.status_code == 200 and "<form" in page.text  # the same session takes another try

    told = come_back(sandbox, payment, pay(url, gateway, "approve"))

    final = api.get(f"/api/v1/payments/{payment['id']}").json()
    assert final["status"] == "succeeded", final
    assert told == "succeeded"
    assert final["failure"] is None and final["next_action"] is None
    charges = sim_charges(gateway, payment["id"])
    assert sorted(charges) == sorted([DECLINED[gateway], MONEY[gateway]])  # exactly one charge with money
    assert final["gateway_payment_id"]
    assert Invoice.objects.filter(payment_id=payment["id"]).exclude(document_type="credit_note").count() == 1


# --- (ii) cancel of a pending checkout closes the session first ------------------------------------------------


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_cancel_of_a_pending_checkout_closes_the_session(api, sandbox, gateway):
    payment = open_checkout(api, gateway, f"cancel-{gateway}")
    url = payment["next_action"]["url"]

    canceled = cancel(api, payment, "c1")

    assert canceled.status_code == 200, canceled.json()
    assert canceled.json()["status"] == "canceled"
    assert_session_closed(gateway, payment["id"], url)
    assert api.get(f"/api/v1/payments/{payment['id']}").json()["status"] == "canceled"


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_cancel_after_a_declined_try_closes_the_session(api, sandbox, gateway):
    payment = open_checkout(api, gateway, f"decline-cancel-{gateway}")
    url = payment["next_action"]["url"]
    come_back(sandbox, payment, pay(url, gateway, "decline"))

    canceled = cancel(api, payment, "c2")

    assert canceled.status_code == 200, canceled.json()
    assert canceled.json()["status"] == "canceled"
    assert_session_closed(gateway, payment["id"], url)


# --- (iii) cancel after the payer paid ------------------------------------------------------------------------


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_cancel_after_the_payer_paid_is_refused(api, sandbox, gateway):
    payment = open_checkout(api, gateway, f"paid-cancel-{gateway}")
    paid = pay(payment["next_action"]["url"], gateway, "approve")
    assert paid.status_code == 302  # the payer never comes back through the return URL

    canceled = cancel(api, payment, "late")

    assert canceled.status_code == 409, canceled.json()
    assert canceled.json()["code"] == "invalid_payment_state"
    final = api.get(f"/api/v1/payments/{payment['id']}").json()
    assert final["status"] == "succeeded"
    assert sim_charges(gateway, payment["id"]) == [MONEY[gateway]]


# --- checkout_expire_at_gateway against the simulators ----------------------------------------------------------


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_expire_at_gateway_closes_an_open_session_and_can_be_repeated(api, sandbox, gateway):
    payment = open_checkout(api, gateway, f"expire-{gateway}")
    row = Payment.objects.get(pk=payment["id"])

    checkout_expire_at_gateway(row)
    checkout_expire_at_gateway(row)  # harmless to repeat: closed already is success

    assert_session_closed(gateway, payment["id"], payment["next_action"]["url"])


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_expire_at_gateway_after_only_declined_tries_closes_the_session(api, sandbox, gateway):
    payment = open_checkout(api, gateway, f"expire-declined-{gateway}")
    url = payment["next_action"]["url"]
    pay(url, gateway, "decline")

    checkout_expire_at_gateway(Payment.objects.get(pk=payment["id"]))

    assert_session_closed(gateway, payment["id"], url)


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_expire_at_gateway_of_a_paid_session_raises_checkout_already_paid(api, sandbox, gateway):
    payment = open_checkout(api, gateway, f"expire-paid-{gateway}")
    url = payment["next_action"]["url"]
    pay(url, gateway, "decline")
    pay(url, gateway, "approve")

    with pytest.raises(CheckoutAlreadyPaid) as caught:
        checkout_expire_at_gateway(Payment.objects.get(pk=payment["id"]))

    if gateway == "mercadopago":
        assert caught.value.charge.status == ChargeStatus.SUCCEEDED
        assert caught.value.charge.reference == payment["id"]
    else:
        assert caught.value.charge is None  # the Culqi order does not name its charge
        assert session_at_gateway(gateway, payment["id"])["state"] == "paid"
    assert sorted(sim_charges(gateway, payment["id"])) == sorted([DECLINED[gateway], MONEY[gateway]])


def test_expire_at_gateway_refuses_to_run_inside_a_transaction(api, sandbox):
    from django.db import transaction

    payment = open_checkout(api, "culqi", "expire-in-tx")
    with pytest.raises(RuntimeError), transaction.atomic():
        checkout_expire_at_gateway(Payment.objects.get(pk=payment["id"]))
    assert session_at_gateway("culqi", payment["id"])["state"] == "created"
