"""/metrics: who may scrape it, and what it shows after real traffic."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from celery import shared_task
from django.core.cache import cache
from django.test import RequestFactory
from prometheus_client import REGISTRY
from prometheus_client.exposition import generate_latest

from notifications.models import DeliveryState, OutgoingEvent
from payments import breaker
from payments.models import Payment, WebhookEvent
from reporting import prom
from reporting.metrics import prometheus_metrics
from reporting.models import Report, ReportStatus
from tests.e2e.conftest import sandbox, tokenize  # noqa: F401 (fixtures: the simulators over real HTTP)

TOKEN = "metrics-token-0123456789abcdef"
FOREIGN = "203.0.113.7"  # TEST-NET-3: never in the allowed networks


@pytest.fixture
def metrics_settings(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.1/32", "10.20.0.0/16"]
    return settings


def scrape(remote_addr=FOREIGN, **headers):
    request = RequestFactory().get("/metrics", REMOTE_ADDR=remote_addr, **headers)
    return prometheus_metrics(request)


def sample(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- Access ---------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"HTTP_AUTHORIZATION": "Bearer wrong-token"},
        {"HTTP_AUTHORIZATION": f"Basic {TOKEN}"},
        {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}x"},
        # A forwarded-for header is whatever the caller says: never trusted.
        {"HTTP_X_FORWARDED_FOR": "127.0.0.1"},
    ],
)
def test_foreign_address_without_the_token_is_forbidden(metrics_settings, headers):
    response = scrape(**headers)
    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/plain")
    assert b"smartpay_" not in response.content


@pytest.mark.django_db
def test_the_token_opens_it_from_anywhere(metrics_settings):
    response = scrape(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b"smartpay_gateway_breaker_state" in response.content


@pytest.mark.django_db
@pytest.mark.parametrize(("address", "status"), [("127.0.0.1", 200), ("10.20.3.4", 200), ("10.21.0.1", 403)])
def test_allowed_networks_need_no_token(metrics_settings, address, status):
    assert scrape(remote_addr=address).status_code == status


@pytest.mark.django_db
def test_without_a_token_setting_only_networks_count(settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    assert scrape(HTTP_AUTHORIZATION="Bearer ").status_code == 403
    assert scrape(remote_addr="127.0.0.1").status_code == 200


@pytest.mark.django_db
def test_the_url_is_wired_and_not_redirected(client, metrics_settings):
    assert client.get("/metrics", REMOTE_ADDR=FOREIGN).status_code == 403
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", REMOTE_ADDR=FOREIGN)
    assert response.status_code == 200


# --- What it shows --------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_payment_through_the_api_shows_up(api, tokenize, metrics_settings):  # noqa: F811
    succeeded = {"gateway": "culqi", "operation": "charge", "outcome": "succeeded"}
    declined = {"gateway": "culqi", "operation": "charge", "outcome": "declined"}
    before_ok = sample("smartpay_payment_attempts_total", **succeeded)
    before_declined = sample("smartpay_payment_attempts_total", **declined)
    before_calls = sample("smartpay_gateway_call_duration_seconds_count", gateway="culqi", operation="charge")
    before_posts = sample(
        "smartpay_http_request_duration_seconds_count", method="POST", route="payment-list", status="2xx"
    )

    for card in ("4111111111111111", "4000040000000008"):  # approved, then insufficient funds
        response = api.post(
            "/api/v1/payments",
            {
                "amount": 2500,
                "currency": "PEN",
                "email": "ana@example.com",
                "source": {"gateway": "culqi", "token": tokenize.culqi(card)},
            },
            format="json",
            HTTP_IDEMPOTENCY_KEY=f"prom-{card}",
        )
        assert response.status_code == 201, response.json()
    payment_ids = list(Payment.objects.values_list("id", flat=True))
    assert len(payment_ids) == 2

    assert sample("smartpay_payment_attempts_total", **succeeded) == before_ok + 1
    assert sample("smartpay_payment_attempts_total", **declined) == before_declined + 1
    assert (
        sample("smartpay_gateway_call_duration_seconds_count", gateway="culqi", operation="charge") == before_calls + 2
    )
    assert (
        sample("smartpay_http_request_duration_seconds_count", method="POST", route="payment-list", status="2xx")
        == before_posts + 2
    )

    body = scrape(HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    for name in (
        "smartpay_http_request_duration_seconds_bucket",
        "smartpay_payment_attempts_total",
        "smartpay_gateway_call_duration_seconds_bucket",
        "smartpay_gateway_breaker_state",
        "smartpay_webhook_events_waiting",
        "smartpay_outgoing_events_waiting",
        "smartpay_reports_waiting",
    ):
        assert f"\n{name}" in body, name
    assert 'smartpay_payment_attempts_total{gateway="culqi",operation="charge",outcome="declined"}' in body
    # Routes are pattern names, never paths; no id, email or token ever becomes a label.
    assert 'route="payment-list"' in body
    for secret in [*payment_ids, "ana@example.com", TOKEN, "/api/v1/"]:
        assert secret not in body


@pytest.mark.django_db
def test_request_route_is_the_pattern_name_not_the_path(client):
    before = sample("smartpay_http_request_duration_seconds_count", method="GET", route="payment-detail", status="4xx")
    unmatched = sample("smartpay_http_request_duration_seconds_count", method="GET", route="unmatched", status="4xx")
    client.get("/api/v1/payments/pay_doesnotexist")  # no key: 401, but the route resolved
    client.get("/no/such/page/123")
    assert (
        sample("smartpay_http_request_duration_seconds_count", method="GET", route="payment-detail", status="4xx")
        == before + 1
    )
    assert (
        sample("smartpay_http_request_duration_seconds_count", method="GET", route="unmatched", status="4xx")
        == unmatched + 1
    )


def exposed(name: str, **labels) -> float | None:
    """One sample of a fresh scrape-time exposition."""
    for family in prom.ScrapeCollector().collect():
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return s.value
    return None


@pytest.fixture
def clean_breakers():
    for gateway in ("culqi", "mercadopago"):
        breaker.reset(gateway)
    yield
    for gateway in ("culqi", "mercadopago"):
        breaker.reset(gateway)


@pytest.mark.django_db
def test_breaker_gauge_follows_the_breaker(settings, clean_breakers):
    assert exposed("smartpay_gateway_breaker_state", gateway="culqi") == 0
    assert exposed("smartpay_gateway_breaker_state", gateway="mercadopago") == 0
    for _ in range(settings.CIRCUIT_FAILURE_THRESHOLD):
        breaker.record_failure("culqi")
    assert breaker.state("culqi").state == breaker.OPEN
    assert exposed("smartpay_gateway_breaker_state", gateway="culqi") == 2
    assert exposed("smartpay_gateway_breaker_state", gateway="mercadopago") == 0
    # Past the cool-down the breaker lets one probe through: half-open.
    cache.set(breaker._key("culqi", "open_until"), time.time() - 1, timeout=600)  # the cool-down is over
    assert exposed("smartpay_gateway_breaker_state", gateway="culqi") == 1


@pytest.mark.django_db
def test_queue_depths_are_counted_at_scrape(client_app):
    WebhookEvent.objects.create(gateway="culqi", event_id="evt-1")
    WebhookEvent.objects.create(gateway="culqi", event_id="evt-2")
    WebhookEvent.objects.create(gateway="culqi", event_id="evt-3", status=WebhookEvent.PROCESSED)
    waiting_events = OutgoingEvent.objects.filter(delivery_state=DeliveryState.PENDING).count()
    OutgoingEvent.objects.create(client_app=client_app, type="payment.succeeded")
    OutgoingEvent.objects.create(
        client_app=client_app, type="payment.succeeded", delivery_state=DeliveryState.DELIVERED
    )
    period = {"period_start": "2025-01-01", "period_end": "2025-01-31", "currency": "PEN"}
    Report.objects.create(**period)
    Report.objects.create(**period)
    Report.objects.create(**period, status=ReportStatus.RUNNING)
    Report.objects.create(**period, status=ReportStatus.READY)

    assert exposed("smartpay_webhook_events_waiting") == 2
    assert exposed("smartpay_outgoing_events_waiting") == waiting_events + 1
    assert exposed("smartpay_reports_waiting", status="queued") == 2
    assert exposed("smartpay_reports_waiting", status="running") == 1


@shared_task(name="tests.reporting.always_fails")
def always_fails():
    raise RuntimeError("boom")


@pytest.mark.django_db
def test_celery_task_failures_are_counted_in_the_cache():
    cache.delete(prom.CELERY_FAILURE_KEY.format(task="tests.reporting.always_fails"))
    assert "tests.reporting.always_fails" not in prom.celery_task_failures()
    for _ in range(2):  # as a worker runs it: the exception is recorded, not raised to the caller
        assert always_fails.apply(throw=False).state == "FAILURE"
    assert prom.celery_task_failures()["tests.reporting.always_fails"] == 2
    body = generate_latest(prom.exposition_registry()).decode()
    assert 'smartpay_celery_task_failures_total{task="tests.reporting.always_fails"} 2.0' in body
    cache.delete(prom.CELERY_FAILURE_KEY.format(task="tests.reporting.always_fails"))


WORKER = """
from reporting import prom
prom.observe_attempt(gateway="mercadopago", operation="charge", outcome="succeeded", duration_ms=420)
"""


@pytest.mark.django_db
def test_multiprocess_mode_adds_up_every_worker(tmp_path, monkeypatch):
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(root)}
    for _ in range(2):  # two "gunicorn workers", each its own process
        subprocess.run([sys.executable, "-c", WORKER], env=env, check=True, cwd=root, timeout=60)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    body = generate_latest(prom.exposition_registry()).decode()
    assert 'smartpay_payment_attempts_total{gateway="mercadopago",operation="charge",outcome="succeeded"} 2.0' in body
    assert (
        'smartpay_gateway_call_duration_seconds_bucket{gateway="mercadopago",le="0.5",operation="charge"} 2.0' in body
    )
    assert "smartpay_gateway_breaker_state" in body  # scrape-time readings are there too
