"""Fault injection (/sandbox/control) and the sandbox-only guard."""

import json

import pytest

from payments.gateways.simulator import control
from payments.gateways.simulator.models import SimCharge, SimToken

pytestmark = pytest.mark.django_db


def _set(client, **body):
    return client.post("/sandbox/control", data=json.dumps(body), content_type="application/json")


@pytest.fixture
def slept(monkeypatch):
    """Sleeps recorded (in milliseconds) instead of taken."""
    calls = []
    monkeypatch.setattr(control, "_sleep_ms", calls.append)
    return calls


def test_control_state_set_get_and_reset(client):
    response = _set(client, gateway="culqi", mode="flaky", failure_rate="0.25", latency_ms=5, seed=7)
    assert response.status_code == 200
    assert response.json() == {
        "gateway": "culqi",
        "mode": "flaky",
        "latency_ms": 5,
        "failure_rate": 0.25,
        "seed": 7,
        "method": None,
        "path": None,
    }
    assert b'"failure_rate":0.25' in response.content
    state = client.get("/sandbox/control").json()
    assert state["culqi"]["mode"] == "flaky"
    assert state["mercadopago"] == {
        "gateway": "mercadopago",
        "mode": "normal",
        "latency_ms": 0,
        "failure_rate": 0,
        "seed": None,
        "method": None,
        "path": None,
    }
    reset = client.delete("/sandbox/control")
    assert reset.status_code == 200
    assert reset.json()["culqi"]["mode"] == "normal"


@pytest.mark.parametrize(
    "body",
    [
        {"gateway": "stripe", "mode": "down"},
        {"gateway": "culqi", "mode": "sideways"},
        {"gateway": "culqi", "mode": "flaky", "failure_rate": 1.5},
        {"gateway": "culqi", "mode": "flaky", "failure_rate": "lots"},
        {"gateway": "culqi", "mode": "slow", "latency_ms": -1},
        {"gateway": "culqi", "mode": "slow", "latency_ms": "5"},
        {"gateway": "culqi", "mode": "down", "method": "BREW"},
        {"gateway": "culqi", "mode": "down", "path": "v2/charges"},
    ],
)
def test_control_validation(client, body):
    assert _set(client, **body).status_code == 400


def test_down_is_a_plain_503_and_nothing_is_processed(client, culqi, mp):
    _set(client, gateway="culqi", mode="down")
    response = culqi.call("post", "/v2/tokens", {"card_number": "4111111111111111"})
    assert response.status_code == 503
    assert response["Content-Type"].startswith("text/plain")
    assert response.content == b"Service Unavailable"
    assert SimToken.objects.count() == 0
    # The other gateway is unaffected.
    assert mp.pay().status_code == 201


def test_error_is_a_500_html_page_and_nothing_is_processed(client, mp):
    token = mp.token()
    _set(client, gateway="mercadopago", mode="error")
    response = mp.pay(token=token)
    assert response.status_code == 500
    assert response["Content-Type"].startswith("text/html")
    assert SimCharge.objects.count() == 0
    control.control_reset()
    assert mp.pay(token=token).status_code == 201  # the token was not spent by the failed call


def test_timeout_processes_then_answers_late(client, culqi, slept):
    token_id = culqi.token()
    _set(client, gateway="culqi", mode="timeout", latency_ms=1500)
    response = culqi.charge(token_id)
    assert slept == [1500]
    assert response.status_code == 201
    assert SimCharge.objects.filter(public_id=response.json()["id"]).exists()  # the charge is made
    _set(client, gateway="culqi", mode="timeout")
    culqi.call("get", "/v2/charges")
    assert slept[-1] == control.DEFAULT_TIMEOUT_MS


def test_a_fault_can_target_one_method_and_path(client, mp, slept):
    """The adapter's token and payment-method lookups get through; only the payment answer is lost."""
    _set(client, gateway="mercadopago", mode="timeout", latency_ms=2000, method="POST", path="/v1/payments")
    token = mp.token()  # POST /v1/card_tokens: not in scope
    assert mp.call("get", f"/v1/card_tokens/{token}").status_code == 200
    assert mp.call("get", "/v1/payment_methods/search?bins=400917").status_code == 200
    assert slept == []
    response = mp.pay(token=token)
    assert response.status_code == 201
    assert slept == [2000]
    assert mp.call("get", "/v1/payments/search?external_reference=x").status_code == 200  # GET: not in scope
    assert slept == [2000]


def test_slow_sleeps_then_processes(client, mp, slept):
    _set(client, gateway="mercadopago", mode="slow", latency_ms=3)
    assert mp.pay().status_code == 201
    assert slept and all(ms == 3 for ms in slept)


def test_slow_really_sleeps(client, culqi):
    import time

    _set(client, gateway="culqi", mode="slow", latency_ms=30)
    started = time.monotonic()
    assert culqi.call("get", "/v2/charges").status_code == 200
    assert time.monotonic() - started >= 0.03


def test_flaky_extremes(client, culqi):
    _set(client, gateway="culqi", mode="flaky", failure_rate=1)
    assert {culqi.call("get", "/v2/charges").status_code for _ in range(5)} == {503}
    _set(client, gateway="culqi", mode="flaky", failure_rate="0")
    assert {culqi.call("get", "/v2/charges").status_code for _ in range(5)} == {200}


def test_flaky_with_a_seed_is_reproducible(client, culqi):
    def run():
        _set(client, gateway="culqi", mode="flaky", failure_rate="0.5", seed=1234)
        return [culqi.call("get", "/v2/charges").status_code for _ in range(20)]

    first, second = run(), run()
    assert first == second
    assert set(first) == {200, 503}


def test_faults_spare_the_control_endpoint_and_the_hosted_pages(client, culqi):
    import time

    order = culqi.call(
        "post",
        "/v2/orders",
        {
            "amount": 1500,
            "currency_code": "PEN",
            "description": "Pedido de prueba",
            "order_number": "pay_ctl",
            "expiration_date": int(time.time()) + 600,
            "client_details": {"first_name": "A", "last_name": "B", "email": "a@example.pe", "phone_number": "999999"},
        },
    ).json()
    _set(client, gateway="culqi", mode="down")
    assert client.get(f"/sandbox/culqi/checkout/{order['id']}").status_code == 200
    assert client.get("/sandbox/control").status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/sandbox/control"),
        ("post", "/sandbox/culqi/v2/tokens"),
        ("get", "/sandbox/culqi/v2/charges"),
        ("get", "/sandbox/culqi/checkout/ord_test_x"),
        ("post", "/sandbox/mercadopago/v1/payments"),
        ("get", "/sandbox/mercadopago/v1/payment_methods/search"),
        ("get", "/sandbox/mercadopago/checkout/123-abc"),
    ],
)
def test_every_simulator_view_is_404_outside_sandbox_mode(client, settings, method, path):
    settings.GATEWAY_MODE = "live"
    response = getattr(client, method)(path, HTTP_AUTHORIZATION="Bearer sk_test_simulatorSecret01")
    assert response.status_code == 404
    assert SimToken.objects.count() == 0


def test_sandbox_urls_are_not_mounted_in_live_mode(settings):
    """smartpay/urls.py builds its patterns at import: re-import it with GATEWAY_MODE=live."""
    import importlib

    from django.urls import Resolver404, clear_url_caches, resolve

    import smartpay.urls

    settings.GATEWAY_MODE = "live"
    try:
        live = importlib.reload(smartpay.urls)
        assert not any(str(p.pattern).startswith("sandbox/") for p in live.urlpatterns)
        settings.ROOT_URLCONF = "smartpay.urls"
        clear_url_caches()
        with pytest.raises(Resolver404):
            resolve("/sandbox/control")
    finally:
        settings.GATEWAY_MODE = "sandbox"
        importlib.reload(smartpay.urls)
        clear_url_caches()
