"""3-D Secure can finish: POST /payments/{id}/confirm, the expiry of unconfirmed challenges, renewals.

SmartPay's adapters talk HTTP to the gateway simulators in this process: `responses` hands every
request for http://sim.test to Django's test client, so the real adapters, the real simulators and
the API all run in the test's transaction (no live server needed).
"""

import json
import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import requests
import responses
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from credits.models import CreditPurchase, PurchaseStatus
from credits.services import (
    RenewalSettings,
    credit_account_for,
    credit_auto_renewal_run,
    credit_auto_renewal_set,
)
from payments import breaker
from payments.enums import AttemptOperation, AttemptOutcome, PaymentStatus
from payments.gateways import registry
from payments.gateways.simulator import culqi_services
from payments.gateways.simulator.control import control_reset, control_set
from payments.gateways.simulator.models import SimCharge
from payments.models import Customer, GatewayCard, Payment, PaymentAttempt, PaymentMethod
from payments.services.confirm import expire_stale_actions, stale_actions
from payments.services.settlement import settle_due_payments
from tests.credits.conftest import grant_lot, plan

pytestmark = pytest.mark.django_db

SIM = "http://sim.test"
THREE_DS_CARD = "4456530000001096"  # Culqi: "success with challenge" (culqi.md §14)
AUTH = {
    "eci": "05",
    "xid": "Y2FyZGluYWxjb21tZXJjZWF1dGg=",
    "cavv": "AAABAWFlmQAAAABjRWWZEEFgFz+=",
    "protocolVersion": "2.1.0",
    "directoryServerTransactionId": "88debec7-a798-46d1-bcfb-db3075fedb82",
}


class Bridge:
    """A `responses` callback that serves http://sim.test/… with the simulators, in this process."""

    def __init__(self):
        self.refuse = None  # a predicate on the request: the connection fails, nothing is processed
        self.lose_answer = None  # a predicate on the request: process it, then time out

    def __call__(self, request):
        if self.refuse is not None and self.refuse(request):
            raise requests.ConnectTimeout("could not connect")
        parts = urlsplit(request.url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = {
            "HTTP_" + name.upper().replace("-", "_"): value
            for name, value in request.headers.items()
            if name.lower() not in ("content-type", "content-length", "host")
        }
        body = request.body or b""
        response = Client().generic(  # one client per request: they are not thread-safe
            request.method,
            path,
            data=body.encode() if isinstance(body, str) else body,
            content_type=request.headers.get("Content-Type", "application/octet-stream"),
            **headers,
        )
        if self.lose_answer is not None and self.lose_answer(request):
            raise requests.ReadTimeout("the answer was lost")
        return response.status_code, dict(response.items()), response.content

    def sent(self, method: str, path: str) -> list[dict]:
        """The JSON bodies SmartPay sent to `path` (exactly) with `method`."""
        return [
            json.loads(call.request.body)
            for call in self.mock.calls
            if call.request.method == method and urlsplit(call.request.url).path.endswith(path)
        ]


@pytest.fixture
def sim(settings):
    settings.PUBLIC_BASE_URL = SIM
    settings.CULQI_API_BASE = settings.CULQI_SECURE_BASE = f"{SIM}/sandbox/culqi"
    settings.MERCADOPAGO_API_BASE = f"{SIM}/sandbox/mercadopago"
    settings.SIMULATOR_DELIVER_WEBHOOKS = False
    settings.PAYMENT_ACTION_TTL_MINUTES = 30
    registry._cache.clear()
    for name in ("culqi", "mercadopago"):
        breaker.reset(name)
    bridge = Bridge()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        for method in (responses.GET, responses.POST, responses.PUT, responses.DELETE):
            mock.add_callback(method, re.compile(re.escape(SIM) + r"/.*"), callback=bridge)
        bridge.mock = mock
        yield bridge
    registry._cache.clear()
    for name in ("culqi", "mercadopago"):
        breaker.reset(name)


# --- Helpers --------------------------------------------------------------------------------------


def culqi_token(number: str = THREE_DS_CARD, email: str = "review@culqi.com") -> str:
    response = Client().post(
        "/sandbox/culqi/v2/tokens",
        {"card_number": number, "cvv": "111", "expiration_month": "12", "expiration_year": "2030", "email": email},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {django_settings.CULQI_PUBLIC_KEY}",
    )
    assert response.status_code == 201, response.content
    return response.json()["id"]


def mp_token(name: str = "CHAL") -> str:
    response = Client().post(
        f"/sandbox/mercadopago/v1/card_tokens?public_key={django_settings.MERCADOPAGO_PUBLIC_KEY}",
        {
            "card_number": "4009175332806176",
            "security_code": "123",
            "expiration_month": 11,
            "expiration_year": 2030,
            "cardholder": {"name": name, "identification": {"type": "DNI", "number": "12345678"}},
        },
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    return response.json()["id"]


def pay(api, source: dict, key: str = "pay-1", email: str = "review@culqi.com", **body):
    body = {"amount": 2500, "currency": "PEN", "email": email, "source": source, **body}
    response = api.post("/api/v1/payments", body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == 201, response.json()
    return response.json()


def confirm(api, payment_id: str, body: dict | None = None, key: str = "confirm-1"):
    return api.post(f"/api/v1/payments/{payment_id}/confirm", body or {}, format="json", HTTP_IDEMPOTENCY_KEY=key)


def culqi_challenge(api):
    token = culqi_token()
    payment = pay(api, {"gateway": "culqi", "token": token})
    assert payment["status"] == "requires_action"
    return payment, token


def mp_challenge(api, **body):
    payment = pay(api, {"gateway": "mercadopago", "token": mp_token("CHAL")}, email="comprador@example.pe", **body)
    assert payment["status"] == "requires_action"
    return payment


def complete_mp_challenge(payment: dict, outcome: str = "authenticated") -> None:
    """What the payer's browser does: POST the CReq to the ACS page, then answer the challenge."""
    action = payment["next_action"]
    path = urlsplit(action["url"]).path
    assert Client().post(path, {"creq": action["creq"]}).status_code == 200
    assert Client().post(path, {"outcome": outcome}).status_code == 200


def later(minutes: float):
    return timezone.now() + timedelta(minutes=minutes)


# --- Culqi: REVIEW, then the same charge with authentication_3DS -------------------------------------


def test_culqi_review_then_confirm_charges_once(api, sim):
    payment, token = culqi_challenge(api)
    assert payment["gateway_payment_id"] is None  # Culqi made no charge on REVIEW
    assert payment["next_action"]["type"] == "three_d_secure"
    assert SimCharge.objects.count() == 0

    response = confirm(api, payment["id"], {"token": token, "authentication_3DS": AUTH})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "succeeded"
    assert body["gateway_payment_id"].startswith("chr_")
    assert body["next_action"] is None and body["failure"] is None
    assert [a["outcome"] for a in body["attempts"]] == ["requires_action", "succeeded"]
    assert SimCharge.objects.count() == 1

    # The retry is the same charge (same token, amount, metadata) plus authentication_3DS (culqi.md §7).
    first, second = sim.sent("POST", "/v2/charges")
    assert "authentication_3DS" not in first
    assert second.pop("authentication_3DS") == AUTH
    assert second == first

    replay = confirm(api, payment["id"], {"token": token, "authentication_3DS": AUTH})
    assert replay.status_code == 200
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.json() == body
    again = confirm(api, payment["id"], {"token": token, "authentication_3DS": AUTH}, key="confirm-2")
    assert again.status_code == 409
    assert again["Content-Type"] == "application/problem+json"
    assert again.json()["code"] == "invalid_payment_state"
    assert SimCharge.objects.count() == 1
    assert len(sim.sent("POST", "/v2/charges")) == 2


def test_culqi_refusal_keeps_the_challenge_open(api, sim):
    payment, token = culqi_challenge(api)
    refused = confirm(api, payment["id"], {"token": "tkn_test_not_the_right_one", "authentication_3DS": AUTH})
    assert refused.status_code == 422
    assert refused.json()["code"] == "gateway_rejected"
    current = Payment.objects.get(pk=payment["id"])
    assert (current.status, current.settle_after) == (PaymentStatus.REQUIRES_ACTION, None)
    assert current.attempts.last().outcome == AttemptOutcome.INVALID
    # Fixed, it goes through; the failed try did not restart the expiry clock.
    fixed = confirm(api, payment["id"], {"token": token, "authentication_3DS": AUTH}, key="confirm-2")
    assert fixed.json()["status"] == "succeeded"
    assert SimCharge.objects.count() == 1


def test_culqi_unavailable_is_503_and_nothing_changes(api, sim):
    payment, token = culqi_challenge(api)
    sim.refuse = lambda request: request.method == "POST"
    down = confirm(api, payment["id"], {"token": token, "authentication_3DS": AUTH})
    assert down.status_code == 503
    assert down.json()["code"] == "gateway_unavailable"
    assert "Retry-After" in down
    current = Payment.objects.get(pk=payment["id"])
    assert current.status == PaymentStatus.REQUIRES_ACTION
    assert current.next_action == payment["next_action"]  # the challenge is still there to confirm
    assert set(current.attempts.values_list("outcome", flat=True)) == {"requires_action", "unavailable"}
    sim.refuse = None
    breaker.reset("culqi")
    assert confirm(api, payment["id"], {"token": token, "authentication_3DS": AUTH}, key="c2").json()["status"] == (
        "succeeded"
    )


def test_culqi_lost_answer_is_settled_by_asking_never_charged_twice(api, sim):
    payment, token = culqi_challenge(api)
    sim.lose_answer = lambda request: b"authentication_3DS" in (request.body or b"")
    lost = confirm(api, payment["id"], {"token": token, "authentication_3DS": AUTH})
    assert lost.status_code == 200
    assert lost.json()["status"] == "processing"  # outcome unknown: the settle job will ask Culqi
    assert SimCharge.objects.count() == 1
    sim.lose_answer = None
    busy = confirm(api, payment["id"], {"token": token, "authentication_3DS": AUTH}, key="c2")
    assert busy.status_code == 409
    assert expire_stale_actions(now=later(60)) == {}  # not requires_action: not the expiry's business

    assert settle_due_payments(now=later(10)) == {"settled": 1}
    settled = Payment.objects.get(pk=payment["id"])
    assert settled.status == PaymentStatus.SUCCEEDED
    assert settled.gateway_payment_id == SimCharge.objects.get().public_id
    assert len(sim.sent("POST", "/v2/charges")) == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_confirms_charge_once(require_postgres, sim, client_app, api_key):
    from tests.concurrency import api_client, run_at_once

    payment, token = culqi_challenge(api_client(api_key))
    body = {"token": token, "authentication_3DS": AUTH}
    responses_ = run_at_once(4, lambda i: confirm(api_client(api_key), payment["id"], body, key=f"race-{i}"))
    statuses = sorted(response.status_code for response in responses_)
    assert statuses == [200, 409, 409, 409], [response.json() for response in responses_]
    assert {response.json()["code"] for response in responses_ if response.status_code == 409} <= {
        "invalid_payment_state",
        "payment_busy",
    }
    assert SimCharge.objects.count() == 1
    assert Payment.objects.get(pk=payment["id"]).status == PaymentStatus.SUCCEEDED


# --- Mercado Pago: the challenge completes at the gateway; confirming asks it ------------------------


def test_mercadopago_challenge_completed_then_confirm(api, sim):
    payment = mp_challenge(api)
    assert payment["gateway_payment_id"]  # Mercado Pago created the payment already
    action = payment["next_action"]
    assert action["type"] == "three_d_secure"
    assert action["url"].startswith(f"{SIM}/sandbox/mercadopago/challenge/")
    assert action["creq"]

    early = confirm(api, payment["id"])  # the payer has not finished: still waiting
    assert early.status_code == 200
    assert early.json()["status"] == "requires_action"

    complete_mp_challenge(payment)
    done = confirm(api, payment["id"], key="confirm-2")
    assert done.status_code == 200, done.json()
    assert done.json()["status"] == "succeeded"
    assert done.json()["next_action"] is None
    assert confirm(api, payment["id"], key="confirm-3").status_code == 409
    assert len(sim.sent("POST", "/v1/payments")) == 1  # confirming never charges


def test_mercadopago_failed_challenge_is_a_decline(api, sim):
    payment = mp_challenge(api)
    complete_mp_challenge(payment, outcome="failed")
    body = confirm(api, payment["id"]).json()
    assert body["status"] == "failed"
    assert body["failure"]["code"] == "card_declined"


def test_mercadopago_authorization_after_the_challenge(api, sim):
    payment = mp_challenge(api, capture=False)
    complete_mp_challenge(payment)
    assert confirm(api, payment["id"]).json()["status"] == "authorized"


# --- Refusals: wrong status, bad bodies --------------------------------------------------------------


def test_confirm_needs_requires_action(api, sim):
    succeeded = pay(api, {"gateway": "culqi", "token": culqi_token("4111111111111111")}, email="ana@example.com")
    assert succeeded["status"] == "succeeded"
    response = confirm(api, succeeded["id"], {"token": "tkn_test_x", "authentication_3DS": AUTH})
    assert response.status_code == 409
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "invalid_payment_state"
    assert api.post(f"/api/v1/payments/{succeeded['id']}/confirm", {}, format="json").status_code == 400  # no key
    assert confirm(api, "pay_doesnotexist").status_code == 404


A3 = "authentication_3DS"
INVALID = "validation_error"


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({A3: AUTH}, INVALID, "token"),
        ({"token": "TOKEN"}, INVALID, A3),
        ({}, INVALID, A3),
        ({"token": "TOKEN", A3: AUTH, "amount": 100}, INVALID, "amount"),
        ({"token": "TOKEN", A3: {**AUTH, "extra": "1"}}, INVALID, f"{A3}.extra"),
        ({"token": "TOKEN", A3: {**AUTH, "eci": "five"}}, INVALID, f"{A3}.eci"),
        ({"token": "TOKEN", A3: {"eci": "05"}}, INVALID, f"{A3}.cavv"),
        ({"token": 42, A3: AUTH}, INVALID, "token"),
        ({"token": "TOKEN", A3: "yes"}, INVALID, f"{A3}.non_field_errors"),
        ({"token": "4111111111111111", A3: AUTH}, "card_data_not_allowed", None),
        ({"token": "TOKEN", A3: {**AUTH, "cavv": "4111 1111 1111 1111"}}, "card_data_not_allowed", None),
    ],
)
def test_culqi_bad_bodies_are_400_and_change_nothing(api, sim, body, code, field):
    payment, token = culqi_challenge(api)
    body = json.loads(json.dumps(body).replace('"TOKEN"', json.dumps(token)))
    response = confirm(api, payment["id"], body)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == code
    if field:
        assert field in problem["errors"], problem
    current = Payment.objects.get(pk=payment["id"])
    assert current.status == PaymentStatus.REQUIRES_ACTION
    assert current.attempts.count() == 1
    assert SimCharge.objects.count() == 0
    # The key was released (a 4xx): the same key with a good body goes through.
    fixed = confirm(api, payment["id"], {"token": token, "authentication_3DS": AUTH})
    assert fixed.json()["status"] == "succeeded"


def test_mercadopago_takes_an_empty_body(api, sim):
    payment = mp_challenge(api)
    response = confirm(api, payment["id"], {"token": "tkn_x", "authentication_3DS": AUTH})
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"token", "authentication_3DS"}
    assert Payment.objects.get(pk=payment["id"]).attempts.count() == 1


def test_the_confirm_endpoint_is_in_the_schema(api):
    schema = api.get("/api/schema/?format=json").json()
    operation = schema["paths"]["/api/v1/payments/{payment_id}/confirm"]["post"]
    assert operation["operationId"] == "payments_confirm"
    assert any(param["name"] == "Idempotency-Key" and param["required"] for param in operation["parameters"])


# --- Expiry -------------------------------------------------------------------------------------------


def test_an_unconfirmed_culqi_challenge_expires_after_the_ttl(api, sim):
    payment, _ = culqi_challenge(api)
    calls = len(sim.mock.calls)
    assert expire_stale_actions(now=later(29)) == {}
    assert Payment.objects.get(pk=payment["id"]).status == PaymentStatus.REQUIRES_ACTION

    assert expire_stale_actions(now=later(31)) == {"expired": 1}
    assert len(sim.mock.calls) == calls  # a REVIEW has no charge at Culqi: nothing to ask
    body = api.get(f"/api/v1/payments/{payment['id']}").json()
    assert body["status"] == "failed"
    assert body["failure"]["code"] == "action_expired"
    assert body["next_action"] is None
    assert expire_stale_actions(now=later(31)) == {}  # twice changes nothing more
    late = confirm(api, payment["id"], {"token": "tkn_test_x", "authentication_3DS": AUTH})
    assert late.status_code == 409


def test_mercadopago_completed_meanwhile_is_recorded_not_expired(api, sim):
    payment = mp_challenge(api)
    complete_mp_challenge(payment)  # no webhook delivered: SmartPay does not know yet
    assert expire_stale_actions(now=later(31)) == {"completed": 1}
    current = Payment.objects.get(pk=payment["id"])
    assert current.status == PaymentStatus.SUCCEEDED
    assert current.failure_code == ""


def test_mercadopago_still_waiting_is_cancelled_there_then_expires(api, sim):
    payment = mp_challenge(api)
    assert expire_stale_actions(now=later(31)) == {"expired": 1}
    current = Payment.objects.get(pk=payment["id"])
    assert (current.status, current.failure_code) == (PaymentStatus.FAILED, "action_expired")
    operations = list(current.attempts.values_list("operation", "outcome"))
    assert operations == [
        (AttemptOperation.CHARGE, AttemptOutcome.REQUIRES_ACTION),
        (AttemptOperation.SYNC, AttemptOutcome.REQUIRES_ACTION),  # asked first
        (AttemptOperation.CANCEL, AttemptOutcome.SUCCEEDED),  # then closed at Mercado Pago
    ]
    assert SimCharge.objects.get(public_id=current.gateway_payment_id).status == "cancelled"
    # A challenge finished too late can no longer take money.
    path = urlsplit(payment["next_action"]["url"]).path
    assert Client().post(path, {"outcome": "authenticated"}).status_code == 409


def test_expiry_retries_when_the_gateway_cannot_be_asked(api, sim):
    payment = mp_challenge(api)
    control_set(gateway="mercadopago", mode="down")
    assert expire_stale_actions(now=later(31)) == {"error": 1}
    assert Payment.objects.get(pk=payment["id"]).status == PaymentStatus.REQUIRES_ACTION
    control_reset()
    assert expire_stale_actions(now=later(32)) == {"expired": 1}


def test_the_clock_starts_when_the_payment_entered_requires_action(api, sim, client_app):
    payment, _ = culqi_challenge(api)
    entered = PaymentAttempt.objects.get(payment_id=payment["id"]).finished_at
    Payment.objects.filter(pk=payment["id"]).update(updated_at=entered - timedelta(days=1))  # not what counts
    assert not stale_actions(before=entered - timedelta(seconds=1)).exists()
    assert list(stale_actions(before=entered).values_list("pk", flat=True)) == [payment["id"]]
    # Without any attempt saying so, `updated_at` is the fallback.
    bare = Payment.objects.create(
        client_app=client_app, amount=1000, currency="PEN", status=PaymentStatus.REQUIRES_ACTION, gateway="culqi"
    )
    Payment.objects.filter(pk=bare.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    assert bare.pk in set(stale_actions(before=later(-30)).values_list("pk", flat=True))
    with CaptureQueriesContext(connection) as queries:
        list(stale_actions(before=later(0)).values_list("pk", flat=True))
    assert len(queries) == 1


def test_the_expiry_task_is_scheduled(settings):
    from payments.tasks import expire_stale_actions as task

    schedule = {entry["task"]: entry for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert schedule["payments.expire_stale_actions"]["schedule"] == 60.0
    assert task.delay().get() == {}


# --- Automatic renewal: a challenge nobody can pass never blocks the next renewal --------------------


@pytest.fixture
def customer(client_app):
    return Customer.objects.create(client_app=client_app, email="ana@example.pe", name="Ana Quispe")


def saved_culqi_card(customer, number: str) -> PaymentMethod:
    """A card saved at the Culqi simulator (as POST /v2/cards would) and in SmartPay."""
    sim_customer = culqi_services.customer_create(
        body={
            "first_name": "Ana",
            "last_name": "Quispe",
            "email": customer.email,
            "address": "Av. Arequipa 123",
            "address_city": "Lima",
            "country_code": "PE",
            "phone_number": "999999999",
        }
    )
    token = culqi_token(number, email=customer.email)
    card = culqi_services.card_create(
        body={"customer_id": sim_customer.public_id, "token_id": token, "validate": False}
    ).card
    method = PaymentMethod.objects.create(
        client_app=customer.client_app, customer=customer, brand="visa", last4=number[-4:], exp_month=12, exp_year=2030
    )
    GatewayCard.objects.create(
        payment_method=method,
        gateway="culqi",
        gateway_customer_id=sim_customer.public_id,
        gateway_card_id=card.public_id,
    )
    return method


def enable_renewal(customer, card):
    return credit_auto_renewal_set(
        customer=customer,
        settings=RenewalSettings(
            plan=plan("basic"), currency="PEN", payment_method=card, threshold=50, renew_on_expiry=False, max_per_day=5
        ),
    )


def renewals(customer):
    return CreditPurchase.objects.filter(customer=customer, source="auto_renewal").order_by("created_at")


def test_a_renewal_asking_for_3ds_fails_at_once_and_frees_the_slot(sim, customer):
    enable_renewal(customer, saved_culqi_card(customer, THREE_DS_CARD))
    grant_lot(customer, 10)
    account = credit_account_for(customer=customer)

    purchase = credit_auto_renewal_run(account_id=account.pk, reason="threshold")
    assert purchase.status == PurchaseStatus.FAILED
    payment = purchase.payment
    assert (payment.status, payment.failure_code) == (PaymentStatus.FAILED, "authentication_required")
    assert SimCharge.objects.count() == 0
    assert not renewals(customer).filter(status=PurchaseStatus.PENDING).exists()
    renewal = account.auto_renewal
    renewal.refresh_from_db()
    assert renewal.consecutive_declines == 1  # counted like a decline: paused, off after three
    assert renewal.paused_until is not None

    # The slot is free: once the pause is over, the next renewal is tried (and fails the same way).
    nxt = credit_auto_renewal_run(account_id=account.pk, reason="threshold", now=timezone.now() + timedelta(hours=13))
    assert nxt is not None and nxt.pk != purchase.pk
    # With a card that does not ask for 3-D Secure, the next renewal goes through.
    enable_renewal(customer, saved_culqi_card(customer, "4111111111111111"))
    granted = credit_auto_renewal_run(account_id=account.pk, reason="threshold")
    assert granted.status == PurchaseStatus.GRANTED
    assert SimCharge.objects.count() == 1


def test_a_renewal_stuck_in_requires_action_is_released_once_it_expires(sim, customer, monkeypatch):
    # As before this change (or when the gateway could not be reached to close it): left waiting.
    monkeypatch.setattr("credits.services.payment_abandon_action", lambda **kwargs: kwargs["payment"])
    enable_renewal(customer, saved_culqi_card(customer, THREE_DS_CARD))
    grant_lot(customer, 10)
    account = credit_account_for(customer=customer)
    stuck = credit_auto_renewal_run(account_id=account.pk, reason="threshold")
    assert stuck.status == PurchaseStatus.PENDING
    assert stuck.payment.status == PaymentStatus.REQUIRES_ACTION
    assert credit_auto_renewal_run(account_id=account.pk, reason="threshold") is None  # one in flight

    assert expire_stale_actions(now=later(31)) == {"expired": 1}
    stuck.payment.refresh_from_db()
    assert stuck.payment.failure_code == "action_expired"
    # The next trigger settles the finished one (no need to wait for the sweep): the slot is free. The
    # expired challenge counts as a failed try (3-D Secure cannot be passed off-session): a pause.
    assert credit_auto_renewal_run(account_id=account.pk, reason="threshold", now=later(31)) is None
    stuck.refresh_from_db()
    assert stuck.status == PurchaseStatus.FAILED
    assert not renewals(customer).filter(status=PurchaseStatus.PENDING).exists()
    account.auto_renewal.refresh_from_db()
    assert account.auto_renewal.consecutive_declines == 1
    # After the pause, the next renewal is tried; with today's code it fails at once instead of waiting.
    monkeypatch.undo()
    retried = credit_auto_renewal_run(account_id=account.pk, reason="threshold", now=later(13 * 60))
    assert retried is not None and retried.pk != stuck.pk
    assert (retried.status, retried.payment.failure_code) == (PurchaseStatus.FAILED, "authentication_required")
    # Saving the settings with another card turns it back on at once, and that renewal is charged.
    enable_renewal(customer, saved_culqi_card(customer, "4111111111111111"))
    granted = credit_auto_renewal_run(account_id=account.pk, reason="threshold")
    assert granted is not None and granted.status == PurchaseStatus.GRANTED
