"""3-D Secure end to end: adapters over real HTTP against the simulators in a live server."""

import itertools
from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from payments.gateways.simulator.models import SimCharge
from payments.models import Payment
from payments.services.confirm import expire_stale_actions

pytestmark = pytest.mark.django_db(transaction=True)

_keys = itertools.count()
AUTH = {
    "eci": "05",
    "xid": "Y2FyZGluYWxjb21tZXJjZWF1dGg=",
    "cavv": "AAABAWFlmQAAAABjRWWZEEFgFz+=",
    "protocolVersion": "2.1.0",
    "directoryServerTransactionId": "88debec7-a798-46d1-bcfb-db3075fedb82",
}


def post(api, path, body=None, key=None):
    return api.post(path, body or {}, format="json", HTTP_IDEMPOTENCY_KEY=key or f"e2e-3ds-{next(_keys)}")


def test_culqi_review_confirm_once(api, tokenize):
    token = tokenize.culqi("4456530000001096", cvv="111", email="review@culqi.com")
    body = {"amount": 2500, "currency": "PEN", "email": "review@culqi.com"}
    payment = post(api, "/api/v1/payments", {**body, "source": {"gateway": "culqi", "token": token}}).json()
    assert payment["status"] == "requires_action"
    assert payment["next_action"]["type"] == "three_d_secure"

    path = f"/api/v1/payments/{payment['id']}/confirm"
    confirmed = post(api, path, {"token": token, "authentication_3DS": AUTH}, key="e2e-confirm")
    assert confirmed.status_code == 200, confirmed.json()
    assert confirmed.json()["status"] == "succeeded"
    assert SimCharge.objects.filter(gateway="culqi").count() == 1
    replay = post(api, path, {"token": token, "authentication_3DS": AUTH}, key="e2e-confirm")
    assert replay["Idempotent-Replayed"] == "true"
    assert post(api, path, {"token": token, "authentication_3DS": AUTH}).status_code == 409
    assert SimCharge.objects.filter(gateway="culqi").count() == 1


def test_mercadopago_challenge_in_the_browser_then_confirm(api, tokenize):
    token = tokenize.mercadopago("CHAL")
    body = {"amount": 2500, "currency": "PEN", "email": "payer@example.com"}
    payment = post(api, "/api/v1/payments", {**body, "source": {"gateway": "mercadopago", "token": token}}).json()
    assert payment["status"] == "requires_action"
    action = payment["next_action"]

    # The payer's browser: POST the CReq to the ACS URL (an iframe), then pass the challenge.
    page = requests.post(action["url"], data={"creq": action["creq"]}, timeout=5)
    assert page.status_code == 200
    assert requests.post(action["url"], data={"outcome": "authenticated"}, timeout=5).status_code == 200

    confirmed = post(api, f"/api/v1/payments/{payment['id']}/confirm")
    assert confirmed.status_code == 200, confirmed.json()
    assert confirmed.json()["status"] == "succeeded"


def test_an_abandoned_mercadopago_challenge_expires_and_is_closed_at_the_gateway(api, tokenize):
    token = tokenize.mercadopago("CHAL")
    body = {"amount": 2500, "currency": "PEN", "email": "payer@example.com"}
    payment = post(api, "/api/v1/payments", {**body, "source": {"gateway": "mercadopago", "token": token}}).json()
    assert expire_stale_actions(now=timezone.now() + timedelta(minutes=31)) == {"expired": 1}
    expired = Payment.objects.get(pk=payment["id"])
    assert (expired.status, expired.failure_code) == ("failed", "action_expired")
    assert SimCharge.objects.get(public_id=expired.gateway_payment_id).status == "cancelled"
    late = requests.post(payment["next_action"]["url"], data={"outcome": "authenticated"}, timeout=5)
    assert late.status_code == 409
