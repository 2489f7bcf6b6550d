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
from payments.models import Payment
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


def test_flaky_gateway_retries_make_payments_succeed_each_charged_once(api, sandbox, tokenize, settings):
    settings.GATEWAY_RETRY_MAX_TRIES = 4
    settings.CIRCUIT_FAILURE_THRESHOLD = 10
    tokens = [tokenize.culqi() for _ in range(12)]
    set_mode(sandbox, "culqi", "flaky", failure_rate="0.3", seed=7)
    results = [pay(api, token, f"f{index}").json() for index, token in enumerate(tokens)]
    assert [r["status"] for r in results] == ["succeeded"] * 12
    retried = [r for r in results if len(r["attempts"]) > 1]
    assert retried, "with a 30 % failure rate some payments must have needed a retry"
    assert SimCharge.objects.count() == 12
    charged_for = sorted(SimCharge.objects.values_list("metadata__smartpay_payment_id", flat=True))
    assert charged_for == sorted(r["id"] for r in results)
