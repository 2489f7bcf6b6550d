"""Per-app rate limits: writes and reads counted apart per minute, the app's own limits or the
defaults, a 429 problem with Retry-After, and a cache outage never stopping a payment."""

import types

import pytest
from django.core.cache import cache

from payments.models import ClientApp, Customer
from tests.foundation.test_errors import assert_problem

pytestmark = pytest.mark.django_db


@pytest.fixture
def clock(monkeypatch):
    """A frozen clock for the limiter: 20 s into a minute, moved by the test."""
    now = {"t": 1_800_000_000.0 + 20}
    monkeypatch.setattr("smartpay.auth.time", types.SimpleNamespace(time=lambda: now["t"]))
    cache.clear()
    return now


def create(api, n):
    return api.post("/api/v1/customers", {"email": f"c{n}@example.com"}, format="json")


def test_reads_and_writes_have_their_own_budgets_per_app(api, other_api, client_app, clock):
    ClientApp.objects.filter(pk=client_app.pk).update(rate_limit_write_per_minute=2, rate_limit_read_per_minute=3)
    assert [create(api, n).status_code for n in range(2)] == [201, 201]
    refused = create(api, 2)
    body = assert_problem(refused, 429, "rate_limited")
    assert refused["Retry-After"] == "40" and body["detail"]
    assert Customer.objects.filter(client_app=client_app).count() == 2  # the refused write changed nothing
    # Reads are still within their own budget, then run out too.
    assert [api.get("/api/v1/customers").status_code for _ in range(4)] == [200, 200, 200, 429]
    # Another app has its own budget (here the defaults).
    assert create(other_api, 9).status_code == 201


def test_the_next_minute_opens_a_new_budget(api, client_app, clock):
    ClientApp.objects.filter(pk=client_app.pk).update(rate_limit_write_per_minute=1)
    assert create(api, 0).status_code == 201
    assert create(api, 1).status_code == 429
    clock["t"] += 40  # the next window
    assert create(api, 2).status_code == 201


def test_without_limits_of_its_own_an_app_gets_the_defaults(api, client_app, clock, settings):
    settings.API_RATE_LIMIT_WRITE_PER_MINUTE = 1
    settings.API_RATE_LIMIT_READ_PER_MINUTE = 2
    assert client_app.rate_limit_write_per_minute is None
    assert [create(api, n).status_code for n in range(2)] == [201, 429]
    assert [api.get("/api/v1/customers").status_code for _ in range(3)] == [200, 200, 429]


def test_a_cache_outage_lets_requests_through(api, client_app, clock, monkeypatch, settings):
    settings.API_RATE_LIMIT_WRITE_PER_MINUTE = 1

    def down(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr("smartpay.auth.cache", types.SimpleNamespace(add=down, incr=down, set=down))
    assert [create(api, n).status_code for n in range(3)] == [201, 201, 201]


def test_staff_set_an_apps_limits_in_the_admin_and_it_is_audited(admin_client, client_app):
    from reporting.models import AuditEntry

    url = f"/admin/payments/clientapp/{client_app.pk}/change/"
    form = {
        "name": client_app.name,
        "is_active": "on",
        "webhook_url": client_app.webhook_url,
        "webhook_enabled": "on",
        "rate_limit_write_per_minute": "250",
        "rate_limit_read_per_minute": "",
        "api_keys-TOTAL_FORMS": "0",  # the keys inline (read-only) still sends its management form
        "api_keys-INITIAL_FORMS": "0",
    }
    response = admin_client.post(url, form)
    assert response.status_code == 302, response.content[:2000]
    client_app.refresh_from_db()
    assert (client_app.rate_limit_write_per_minute, client_app.rate_limit_read_per_minute) == (250, None)
    entry = AuditEntry.objects.get(action="client_app.update")
    assert entry.after == {"rate_limit_write_per_minute": 250}
    assert admin_client.post(url, {**form, "rate_limit_write_per_minute": "0"}).status_code == 200  # refused
