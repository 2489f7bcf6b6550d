"""Liveness and readiness probes: no auth, fast, and a failing dependency is named in a 503 problem."""

import time

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.urls import reverse

from smartpay import health

pytestmark = pytest.mark.django_db

DEAD_BROKER = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connection refused at once


def assert_not_ready(response, failing: str) -> dict:
    assert response.status_code == 503, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "not_ready"
    assert body["status"] == 503
    assert failing in body["detail"]
    assert body["checks"][failing].startswith("error")
    assert body["request_id"] == response["Request-Id"]
    return body


def test_urls_are_the_documented_ones():
    assert reverse("healthz") == "/healthz"
    assert reverse("readyz") == "/readyz"


def test_healthz_is_200_without_auth_and_touches_nothing(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Request-Id"]


def test_readyz_is_200_with_the_database_ok(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"] == "ok"


def test_readyz_is_503_naming_the_database_when_it_fails(client, monkeypatch):
    def broken():
        raise ConnectionError("could not connect to server: secret-host:5432")

    monkeypatch.setattr(health, "_check_database", broken)
    body = assert_not_ready(client.get("/readyz"), "database")
    assert "secret-host" not in str(body)  # the probe names the part, not the internals


def test_readyz_is_503_quickly_when_the_broker_is_unreachable(client, settings):
    settings.CELERY_BROKER_URL = DEAD_BROKER
    started = time.monotonic()
    response = client.get("/readyz")
    elapsed = time.monotonic() - started
    body = assert_not_ready(response, "broker")
    assert body["checks"]["database"] == "ok"
    assert elapsed < 5, f"readiness took {elapsed:.1f}s with a dead broker"


def test_readyz_checks_the_configured_broker_not_a_cached_one(client, settings):
    # The Celery app caches its configuration; the probe must still use the configured URL.
    from smartpay.celery import app

    app.connection_for_write().release()  # make the app load (and cache) its configuration
    settings.CELERY_BROKER_URL = DEAD_BROKER
    assert_not_ready(client.get("/readyz"), "broker")


def test_readyz_is_200_with_a_live_broker(client, settings):
    broker = django_settings.TEST_CELERY_BROKER_URL
    if not broker:
        pytest.skip("no CELERY_BROKER_URL configured")
    settings.CELERY_BROKER_URL = broker
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["checks"]["broker"] == "ok"


def test_readyz_is_503_naming_the_cache_when_redis_is_unreachable(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": settings.REDIS_URL}
    }
    started = time.monotonic()
    body = assert_not_ready(client.get("/readyz"), "cache")
    assert time.monotonic() - started < 5
    assert body["checks"]["database"] == "ok"


def test_probes_are_exempt_from_the_https_redirect(settings):
    settings.SECURE_SSL_REDIRECT = True
    client = Client()  # a new client builds its middleware with the overridden setting
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/api/v1/customers").status_code == 301
