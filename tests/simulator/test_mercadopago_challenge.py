"""The Mercado Pago simulator's 3-D Secure challenge: CHAL waits for it, the challenge page completes it."""

import base64
import json

import pytest

from payments.gateways.simulator.models import SimCharge

pytestmark = pytest.mark.django_db


def challenge(client, payment_id, **form):
    return client.post(f"/sandbox/mercadopago/challenge/{payment_id}", form)


def test_chal_waits_for_a_challenge_with_three_ds_info(mp, client):
    response = mp.pay("CHAL")
    assert response.status_code == 201
    body = response.json()
    assert (body["status"], body["status_detail"]) == ("pending", "pending_challenge")
    assert body["captured"] is False
    info = body["three_ds_info"]
    assert info["external_resource_url"] == f"http://smartpay.test/sandbox/mercadopago/challenge/{body['id']}"
    creq = json.loads(base64.urlsafe_b64decode(info["creq"] + "=" * (-len(info["creq"]) % 4)))
    assert creq["messageType"] == "CReq"
    # GET shows the same payment, still waiting; other outcomes carry no three_ds_info.
    assert mp.call("get", f"/v1/payments/{body['id']}").json()["three_ds_info"] == info
    assert "three_ds_info" not in mp.pay("APRO").json()

    page = challenge(client, body["id"], creq=info["creq"])  # what the payer's iframe posts
    assert page.status_code == 200
    assert b"3-D Secure" in page.content
    assert challenge(client, body["id"], creq="not-this-payment").status_code == 400


@pytest.mark.parametrize(
    ("capture", "outcome", "status", "detail"),
    [
        (True, "authenticated", "approved", "accredited"),
        (False, "authenticated", "authorized", "pending_capture"),
        (True, "failed", "rejected", "cc_rejected_3ds_challenge"),
    ],
)
def test_completing_the_challenge(mp, client, capture, outcome, status, detail):
    payment_id = mp.pay("CHAL", capture=capture).json()["id"]
    response = challenge(client, payment_id, outcome=outcome)
    assert response.status_code == 200
    body = mp.call("get", f"/v1/payments/{payment_id}").json()
    assert (body["status"], body["status_detail"]) == (status, detail)
    assert "three_ds_info" not in body
    # Once done, the challenge cannot be taken again.
    assert challenge(client, payment_id, outcome="authenticated").status_code == 409
    assert challenge(client, payment_id).status_code == 409
    assert SimCharge.objects.get(public_id=str(payment_id)).status == status


def test_a_waiting_challenge_can_be_cancelled_and_then_not_completed(mp, client):
    payment_id = mp.pay("CHAL").json()["id"]
    cancelled = mp.call("put", f"/v1/payments/{payment_id}", {"status": "cancelled"})
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert challenge(client, payment_id, outcome="authenticated").status_code == 409
    assert SimCharge.objects.get(public_id=str(payment_id)).status == "cancelled"


def test_binary_mode_refuses_a_challenge(mp):
    body = mp.pay("CHAL", binary_mode=True).json()
    assert (body["status"], body["status_detail"]) == ("rejected", "cc_rejected_3ds_mandatory")


def test_unknown_payment_or_outcome(mp, client):
    assert challenge(client, "999", outcome="authenticated").status_code == 404
    payment_id = mp.pay("CHAL").json()["id"]
    assert challenge(client, payment_id, outcome="maybe").status_code == 400
    assert client.delete(f"/sandbox/mercadopago/challenge/{payment_id}").status_code == 405
