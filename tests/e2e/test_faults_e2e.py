"""Failures injected into the simulators: money is never lost and never charged twice."""

import socket
import threading
import time
from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from payments import breaker
from payments.gateways import registry
from payments.gateways.simulator.models import SimCharge
from payments.models import Payment, PaymentAttempt
from payments.services.settlement import settle_due_payments
from tests.e2e.conftest import set_mode

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_breakers():
    for name in ("culqi", "mercadopago"):
        breaker.reset(name)
    yield
    for name in ("culqi", "mercadopago"):
        breaker.reset(name)


def pay(api, token, key, gateway="culqi", **extra):
    body = {
        "amount": 3000,
        "currency": "PEN",
        "email": "payer@example.com",
        "source": {"gateway": gateway, "token": token},
        **extra,
    }
    return api.post("/api/v1/payments", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def checkout(api, key):
    body = {"amount": 3000, "currency": "PEN", "email": "payer@example.com", "checkout": True}
    return api.post("/api/v1/payments", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_timeout_after_the_charge_is_settled_later_with_exactly_one_charge(api, sandbox, tokenize, settings):
    settings.GATEWAY_READ_TIMEOUT = 1.0
    token = tokenize.culqi()
    set_mode(sandbox, "culqi", "timeout", latency_ms=2500)
    body = pay(api, token, "t1").json()
    assert body["status"] == "processing"
    assert [a["outcome"] for a in body["attempts"]] == ["unknown"]
    assert SimCharge.objects.count() == 1  # it did reach the gateway

    requests.delete(f"{sandbox}/sandbox/control", timeout=5)
    counts = settle_due_payments(now=timezone.now() + timedelta(minutes=5))
    assert counts == {"settled": 1}
    payment = Payment.objects.get(pk=body["id"])
    assert payment.status == "succeeded"
    assert payment.gateway_payment_id == SimCharge.objects.get().public_id
    assert SimCharge.objects.count() == 1  # and it was never charged again


@pytest.fixture
def black_hole():
    """A TCP server that accepts connections and never answers: the request leaves, nothing comes back."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held, stop = [], threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(timeout=2)
    for conn in held:
        conn.close()
    server.close()


def test_charge_that_never_reached_the_gateway_fails_with_gateway_timeout(api, sandbox, tokenize, settings, black_hole):
    settings.GATEWAY_READ_TIMEOUT = 0.5
    token = tokenize.culqi()
    real_base = settings.CULQI_API_BASE
    settings.CULQI_API_BASE = black_hole
    registry._cache.clear()
    body = pay(api, token, "t2").json()
    assert body["status"] == "processing"

    settings.CULQI_API_BASE = real_base
    registry._cache.clear()
    created = Payment.objects.get(pk=body["id"]).created_at
    assert settle_due_payments(now=created + timedelta(minutes=5)) == {"absent": 1}
    assert settle_due_payments(now=created + timedelta(hours=24, minutes=5)) == {"failed": 1}
    payment = Payment.objects.get(pk=body["id"])
    assert payment.status == "failed" and payment.failure_code == "gateway_timeout"
    assert SimCharge.objects.count() == 0


def test_down_gateway_opens_its_breaker_and_payments_move_to_the_other(api, sandbox, settings):
    settings.CIRCUIT_FAILURE_THRESHOLD = 3
    settings.CIRCUIT_COOL_DOWN_SECONDS = 1
    set_mode(sandbox, "culqi", "down")

    first = checkout(api, "c1").json()  # culqi is first in routing: 3 unavailable tries, then Mercado Pago
    assert first["gateway"] == "mercadopago" and first["status"] == "pending"
    assert [a["gateway"] for a in first["attempts"]] == ["culqi", "culqi", "culqi", "mercadopago"]
    assert breaker.state("culqi").state == "open"
    health = {row["name"]: row["healthy"] for row in api.get("/api/v1/gateways").json()}
    assert health == {"culqi": False, "mercadopago": True}

    second = checkout(api, "c2").json()  # the open breaker skips culqi without calling it
    assert [a["gateway"] for a in second["attempts"]] == ["mercadopago"]

    requests.delete(f"{sandbox}/sandbox/control", timeout=5)  # culqi recovers
    time.sleep(1.1)  # cool-down: the next payment is culqi's probe
    third = checkout(api, "c3").json()
    assert third["gateway"] == "culqi" and [a["gateway"] for a in third["attempts"]] == ["culqi"]
    assert breaker.state("culqi").state == "closed"
    assert all(row["healthy"] for row in api.get("/api/v1/gateways").json())


def test_a_charge_at_a_down_culqi_is_unknown_never_resent_nor_failed_over_and_settled_by_asking(api, sandbox, tokenize):
    """`down` answers 503 without processing, but SmartPay cannot know that: the charge left."""
    token = tokenize.culqi()
    set_mode(sandbox, "culqi", "down")
    response = pay(api, token, "d1")
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "processing" and body["gateway"] == "culqi" and body["failure"] is None
    assert [a["outcome"] for a in body["attempts"]] == ["unknown"]  # never resent, never failed over
    assert SimCharge.objects.count() == 0

    created = Payment.objects.get(pk=body["id"]).created_at
    assert settle_due_payments(now=created + timedelta(minutes=5)) == {"error": 1}  # still down: ask later
    requests.delete(f"{sandbox}/sandbox/control", timeout=5)
    assert settle_due_payments(now=created + timedelta(hours=1)) == {"absent": 1}
    assert settle_due_payments(now=created + timedelta(hours=24, minutes=5)) == {"failed": 1}
    payment = Payment.objects.get(pk=body["id"])
    assert payment.status == "failed" and payment.failure_code == "gateway_timeout"
    assert SimCharge.objects.count() == 0


def test_flaky_culqi_charges_that_got_a_503_stay_processing_and_are_never_charged_twice(
    api, sandbox, tokenize, settings
):
    settings.GATEWAY_RETRY_MAX_TRIES = 4
    settings.CIRCUIT_FAILURE_THRESHOLD = 10
    tokens = [tokenize.culqi() for _ in range(12)]
    set_mode(sandbox, "culqi", "flaky", failure_rate="0.3", seed=7)
    results = [pay(api, token, f"f{index}").json() for index, token in enumerate(tokens)]
    succeeded = [r for r in results if r["status"] == "succeeded"]
    unknown = [r for r in results if r["status"] == "processing"]
    assert len(succeeded) + len(unknown) == 12
    assert unknown and succeeded, "with a 30 % failure rate (seed 7: 4 of 12) some charges must meet a 503"
    assert all(len(r["attempts"]) == 1 for r in results)  # Culqi has no idempotency key: never resent
    assert all(r["attempts"][0]["outcome"] == "unknown" and r["failure"] is None for r in unknown)
    charged_for = sorted(SimCharge.objects.values_list("metadata__smartpay_payment_id", flat=True))
    assert charged_for == sorted(r["id"] for r in succeeded)  # each charged once; the 503s not at all

    requests.delete(f"{sandbox}/sandbox/control", timeout=5)
    unknown_ids = [r["id"] for r in unknown]
    first = min(Payment.objects.filter(pk__in=unknown_ids).values_list("created_at", flat=True))
    assert settle_due_payments(now=timezone.now() + timedelta(minutes=5)) == {"absent": len(unknown)}
    assert settle_due_payments(now=first + timedelta(hours=24, minutes=5)) == {"failed": len(unknown)}
    assert set(Payment.objects.filter(pk__in=unknown_ids).values_list("status", "failure_code")) == {
        ("failed", "gateway_timeout")
    }
    assert SimCharge.objects.count() == len(succeeded)  # settling asked; it never charged


def test_flaky_mercadopago_charges_are_resent_with_the_same_key_and_each_charged_once(api, sandbox, tokenize, settings):
    settings.GATEWAY_RETRY_MAX_TRIES = 4
    settings.CIRCUIT_FAILURE_THRESHOLD = 10
    tokens = [tokenize.mercadopago("APRO") for _ in range(8)]
    set_mode(sandbox, "mercadopago", "flaky", failure_rate="0.3", seed=7, method="POST", path="/v1/payments")
    results = [pay(api, token, f"m{index}", gateway="mercadopago").json() for index, token in enumerate(tokens)]
    assert [r["status"] for r in results] == ["succeeded"] * 8
    resent = [r for r in results if len(r["attempts"]) > 1]
    assert resent, "with a 30 % failure rate (seed 7) some payments must have met a 503"
    assert all([a["outcome"] for a in r["attempts"]][-1] == "succeeded" for r in resent)
    assert all({a["outcome"] for a in r["attempts"][:-1]} == {"unknown"} for r in resent)
    assert set(PaymentAttempt.objects.values_list("payment_id", "idempotency_key")) == {
        (r["id"], f"{r['id']}:charge:1") for r in results
    }  # every resend carried its payment's one key
    charged_for = sorted(SimCharge.objects.filter(gateway="mercadopago").values_list("external_reference", flat=True))
    assert charged_for == sorted(r["id"] for r in results)  # each charged exactly once
