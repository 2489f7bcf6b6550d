"""Events API (contract "Events out"): the calling app's events and delivery attempts, redelivery,
and its webhook endpoint (URL guard, secret rotation). Another app's event is not found."""

import contextlib
import io
from datetime import timedelta

import pytest
import yaml
from django.core.management import call_command
from django.utils import timezone
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.management.commands.spectacular import SchemaGenerationError, SchemaValidationError
from rest_framework.test import APIClient

from notifications.models import OutgoingEvent
from payments.models import ClientApp, IdempotencyRecord
from tests.notifications.events_fixtures import add_attempt, count_redeliveries, make_event

pytestmark = pytest.mark.django_db


@pytest.fixture
def engine(monkeypatch):
    return count_redeliveries(monkeypatch)


EVENT_FIELDS = {
    "id",
    "object",
    "type",
    "created_at",
    "data",
    "delivery_state",
    "attempts",
    "next_attempt_at",
    "delivered_at",
    "last_error",
}
ATTEMPT_FIELDS = {"number", "url", "status_code", "duration_ms", "response_excerpt", "error", "created_at"}


def ids(response) -> list[str]:
    return [row["id"] for row in response.json()["data"]]


# --- GET /api/v1/events --------------------------------------------------------------------------


def test_list_is_newest_first_with_the_event_object(api, client_app):
    first = make_event(client_app, type="payment.succeeded", state="delivered", attempts=1, delivered_at=timezone.now())
    second = make_event(client_app, type="invoice.issued", state="pending", object_id="inv_1")
    third = make_event(client_app, type="payment.failed", state="failed", attempts=7, last_error="HTTP 500")

    response = api.get("/api/v1/events")

    assert response.status_code == 200
    body = response.json()
    assert (body["object"], body["has_more"], body["next_starting_after"]) == ("list", False, None)
    assert ids(response) == [third.pk, second.pk, first.pk]
    rows = {row["id"]: row for row in body["data"]}
    assert all(set(row) == EVENT_FIELDS for row in rows.values())
    assert rows[third.pk] == {
        "id": third.pk,
        "object": "event",
        "type": "payment.failed",
        "created_at": rows[third.pk]["created_at"],
        "data": {"id": "pay_x", "object": "payment"},
        "delivery_state": "failed",
        "attempts": 7,
        "next_attempt_at": None,  # only a pending event has a next try
        "delivered_at": None,
        "last_error": "HTTP 500",
    }
    assert rows[third.pk]["created_at"].endswith("Z")
    assert rows[second.pk]["next_attempt_at"] is not None
    assert rows[first.pk]["delivered_at"] is not None and rows[first.pk]["next_attempt_at"] is None


def test_list_filters(api, client_app):
    old = make_event(client_app, type="payment.succeeded", state="delivered")
    OutgoingEvent.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))
    failed = make_event(client_app, type="payment.failed", state="failed")
    invoice = make_event(client_app, type="invoice.issued", state="delivered", object_id="inv_1")
    two_days_ago = (timezone.now() - timedelta(days=2)).isoformat()

    assert ids(api.get("/api/v1/events", {"type": "invoice.issued"})) == [invoice.pk]
    assert ids(api.get("/api/v1/events", {"delivery_state": "delivered"})) == [invoice.pk, old.pk]
    assert ids(api.get("/api/v1/events", {"created_gte": two_days_ago})) == [invoice.pk, failed.pk]
    assert ids(api.get("/api/v1/events", {"created_lt": two_days_ago})) == [old.pk]
    assert ids(api.get("/api/v1/events", {"type": "payment.failed", "delivery_state": "delivered"})) == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"type": "payment.succeded"}, "type"),
        ({"delivery_state": "sent"}, "delivery_state"),
        ({"created_gte": "yesterday"}, "created_gte"),
        ({"limit": "0"}, "limit"),
    ],
)
def test_a_bad_filter_is_a_400_naming_it(api, client_app, params, field):
    make_event(client_app)
    response = api.get("/api/v1/events", params)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "validation_error" and list(body["errors"]) == [field]


def test_list_pages_with_a_cursor(api, client_app):
    events = [make_event(client_app, object_id=f"pay_{n}") for n in range(5)]
    newest_first = [event.pk for event in reversed(events)]

    page1 = api.get("/api/v1/events", {"limit": 2}).json()
    assert [row["id"] for row in page1["data"]] == newest_first[:2]
    assert page1["has_more"] is True and page1["next_starting_after"] == newest_first[1]
    page2 = api.get("/api/v1/events", {"limit": 2, "starting_after": page1["next_starting_after"]}).json()
    assert [row["id"] for row in page2["data"]] == newest_first[2:4]
    page3 = api.get("/api/v1/events", {"limit": 2, "starting_after": page2["next_starting_after"]}).json()
    assert [row["id"] for row in page3["data"]] == newest_first[4:]
    assert page3["has_more"] is False and page3["next_starting_after"] is None


def test_list_shows_only_the_calling_apps_events(api, other_api, client_app):
    mine = make_event(client_app)
    theirs = make_event(other_api.client_app)
    assert ids(api.get("/api/v1/events")) == [mine.pk]
    assert ids(other_api.get("/api/v1/events")) == [theirs.pk]


def test_events_need_an_api_key(client_app):
    make_event(client_app)
    response = APIClient().get("/api/v1/events")
    assert response.status_code == 401 and response.json()["code"] == "unauthenticated"


# --- GET /api/v1/events/{id} ---------------------------------------------------------------------


def test_detail_has_its_delivery_attempts_oldest_first(api, client_app):
    event = make_event(client_app, state="pending", attempts=2, last_error="timeout")
    add_attempt(event, 2, status_code=500)
    add_attempt(event, 1, error="Read timed out after 10 s")

    response = api.get(f"/api/v1/events/{event.pk}")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == EVENT_FIELDS | {"delivery_attempts"}
    assert body["id"] == event.pk and body["attempts"] == 2 and body["last_error"] == "timeout"
    assert [set(row) for row in body["delivery_attempts"]] == [ATTEMPT_FIELDS, ATTEMPT_FIELDS]
    first, second = body["delivery_attempts"]
    assert {key: first[key] for key in ATTEMPT_FIELDS - {"created_at"}} == {
        "number": 1,
        "url": "https://acme.example/hooks",
        "status_code": None,
        "duration_ms": 121,
        "response_excerpt": "",
        "error": "Read timed out after 10 s",
    }
    assert (second["number"], second["status_code"], second["response_excerpt"]) == (2, 500, "answer 500")


def test_an_unknown_event_is_404(api):
    response = api.get("/api/v1/events/evt_doesnotexist")
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_another_apps_event_is_404_on_every_route(api, other_api, engine):
    theirs = make_event(other_api.client_app, state="failed")
    add_attempt(theirs, 1, status_code=500)

    detail = api.get(f"/api/v1/events/{theirs.pk}")
    redeliver = api.post(f"/api/v1/events/{theirs.pk}/redeliver", {}, format="json")
    keyed = api.post(
        f"/api/v1/events/{theirs.pk}/redeliver", {}, format="json", HTTP_IDEMPOTENCY_KEY="redeliver-theirs"
    )

    for response in (detail, redeliver, keyed):
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
        assert theirs.pk not in response.content.decode()
    assert engine.redelivered == []
    theirs.refresh_from_db()
    assert theirs.delivery_state == "failed"
    assert other_api.get(f"/api/v1/events/{theirs.pk}").status_code == 200


# --- POST /api/v1/events/{id}/redeliver ----------------------------------------------------------


def test_redeliver_moves_a_failed_event_to_pending(api, client_app, engine):
    event = make_event(client_app, state="failed", attempts=7, last_error="HTTP 500")
    add_attempt(event, 7, status_code=500)

    response = api.post(f"/api/v1/events/{event.pk}/redeliver", {}, format="json")

    assert response.status_code == 202
    body = response.json()
    assert body["id"] == event.pk and body["delivery_state"] == "pending"
    assert body["next_attempt_at"] is not None
    assert [row["number"] for row in body["delivery_attempts"]] == [7]  # the history stays
    assert engine.redelivered == [event.pk]
    event.refresh_from_db()
    assert event.delivery_state == "pending"
    assert event.next_attempt_at <= timezone.now()


def test_redeliver_with_an_idempotency_key_queues_once(api, client_app, engine):
    event = make_event(client_app, state="failed")
    url = f"/api/v1/events/{event.pk}/redeliver"

    first = api.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="redeliver-1")
    again = api.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="redeliver-1")

    assert (first.status_code, again.status_code) == (202, 202)
    assert again["Idempotent-Replayed"] == "true" and again.json() == first.json()
    assert engine.redelivered == [event.pk]


def test_redeliver_without_an_endpoint_is_409_and_queues_nothing(api, client_app, engine):
    event = make_event(client_app, state="skipped")
    ClientApp.objects.filter(pk=client_app.pk).update(webhook_enabled=False)

    response = api.post(f"/api/v1/events/{event.pk}/redeliver", {}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "webhook_endpoint_not_configured"
    assert engine.redelivered == []
    event.refresh_from_db()
    assert event.delivery_state == "skipped"


def test_redeliver_refuses_a_body(api, client_app, engine):
    event = make_event(client_app, state="failed")
    response = api.post(f"/api/v1/events/{event.pk}/redeliver", {"url": "https://elsewhere.example"}, format="json")
    assert response.status_code == 400 and list(response.json()["errors"]) == ["url"]
    assert engine.redelivered == []


# --- GET|PATCH /api/v1/webhook-endpoint ----------------------------------------------------------


def test_get_webhook_endpoint_shows_a_hint_never_the_secret(api, client_app):
    response = api.get("/api/v1/webhook-endpoint")
    assert response.status_code == 200
    assert response.json() == {
        "object": "webhook_endpoint",
        "url": "https://acme.example/hooks",
        "enabled": True,
        "secret_hint": client_app.webhook_secret[:10] + "…",
        "previous_secret_expires_at": None,
    }
    assert client_app.webhook_secret not in response.content.decode()


def test_patch_saves_a_public_url_and_the_enabled_flag(api, client_app, engine, settings):
    settings.EVENTS_ALLOW_PRIVATE_URLS = False
    settings.EVENTS_REQUIRE_HTTPS = True
    response = api.patch(
        "/api/v1/webhook-endpoint", {"url": "https://93.184.216.34/smartpay/events", "enabled": False}, format="json"
    )
    assert response.status_code == 200
    assert (response.json()["url"], response.json()["enabled"]) == ("https://93.184.216.34/smartpay/events", False)
    client_app.refresh_from_db()
    assert (client_app.webhook_url, client_app.webhook_enabled) == ("https://93.184.216.34/smartpay/events", False)

    assert api.patch("/api/v1/webhook-endpoint", {"enabled": True}, format="json").status_code == 200
    client_app.refresh_from_db()
    assert (client_app.webhook_url, client_app.webhook_enabled) == ("https://93.184.216.34/smartpay/events", True)


@pytest.mark.parametrize(
    "url", ["https://127.0.0.1:9000/hooks", "https://10.1.2.3/hooks", "https://169.254.169.254/latest/meta-data"]
)
def test_patch_refuses_a_private_url_naming_the_field(api, client_app, engine, settings, url):
    settings.EVENTS_ALLOW_PRIVATE_URLS = False
    settings.EVENTS_REQUIRE_HTTPS = True
    response = api.patch("/api/v1/webhook-endpoint", {"url": url, "enabled": False}, format="json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "validation_error" and list(body["errors"]) == ["url"]
    client_app.refresh_from_db()
    assert (client_app.webhook_url, client_app.webhook_enabled) == ("https://acme.example/hooks", True)


def test_patch_accepts_a_private_url_when_allowed(api, client_app, engine, settings):
    settings.EVENTS_ALLOW_PRIVATE_URLS = True
    settings.EVENTS_REQUIRE_HTTPS = False  # sandbox mode: the built-in receiver is plain HTTP
    response = api.patch("/api/v1/webhook-endpoint", {"url": "http://127.0.0.1:9000/hooks"}, format="json")
    assert response.status_code == 200
    client_app.refresh_from_db()
    assert client_app.webhook_url == "http://127.0.0.1:9000/hooks"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://93.184.216.34/hooks"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": 42}, "url"),
        ({"secret": "whsec_mine"}, "secret"),
        ({"enabled": "maybe"}, "enabled"),
    ],
)
def test_patch_refuses_bad_input(api, client_app, engine, body, field):
    response = api.patch("/api/v1/webhook-endpoint", body, format="json")
    assert response.status_code == 400 and list(response.json()["errors"]) == [field]
    client_app.refresh_from_db()
    assert client_app.webhook_url == "https://acme.example/hooks"


def test_an_empty_url_stops_deliveries(api, client_app, engine):
    response = api.patch("/api/v1/webhook-endpoint", {"url": ""}, format="json")
    assert response.status_code == 200 and response.json()["url"] == ""
    client_app.refresh_from_db()
    assert client_app.webhook_url == ""


# --- POST /api/v1/webhook-endpoint/rotate-secret -------------------------------------------------


def test_rotate_returns_the_new_secret_once_and_keeps_the_old_one_24h(api, client_app):
    old = client_app.webhook_secret
    before = timezone.now()

    response = api.post("/api/v1/webhook-endpoint/rotate-secret", {}, format="json")

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    client_app.refresh_from_db()
    new = client_app.webhook_secret
    assert new != old and new.startswith("whsec_")
    assert body["secret"] == new and body["secret_hint"] == new[:10] + "…"
    assert client_app.previous_webhook_secret == old
    expires = client_app.previous_webhook_secret_expires_at
    assert before + timedelta(hours=24) <= expires <= timezone.now() + timedelta(hours=24)
    assert body["previous_secret_expires_at"] is not None

    shown = api.get("/api/v1/webhook-endpoint")
    assert "secret" not in shown.json()
    assert new not in shown.content.decode() and old not in shown.content.decode()
    assert shown.json()["previous_secret_expires_at"] == body["previous_secret_expires_at"]


def test_rotating_again_keeps_only_the_last_secret_as_previous(api, client_app):
    original = client_app.webhook_secret
    first = api.post("/api/v1/webhook-endpoint/rotate-secret", {}, format="json").json()["secret"]
    second = api.post("/api/v1/webhook-endpoint/rotate-secret", {}, format="json").json()["secret"]
    client_app.refresh_from_db()
    assert (client_app.webhook_secret, client_app.previous_webhook_secret) == (second, first)
    assert original not in (client_app.webhook_secret, client_app.previous_webhook_secret)


def test_a_repeat_with_the_same_idempotency_key_replays_the_same_secret(api, client_app):
    url = "/api/v1/webhook-endpoint/rotate-secret"
    first = api.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="rotate-1")
    again = api.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="rotate-1")
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["secret"] == first.json()["secret"]
    client_app.refresh_from_db()
    assert client_app.webhook_secret == first.json()["secret"]  # rotated once, not twice
    assert IdempotencyRecord.objects.filter(client_app=client_app, key="rotate-1").count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_rotations_run_one_after_the_other(require_postgres, client_app, api_key):
    """The app's row is locked: each rotation keeps the secret the other one made as its previous
    one, so no secret handed out is ever lost without its 24 h grace."""
    from tests.concurrency import api_client, run_at_once

    original = client_app.webhook_secret
    responses = run_at_once(
        2, lambda i: api_client(api_key).post("/api/v1/webhook-endpoint/rotate-secret", {}, format="json")
    )
    assert [response.status_code for response in responses] == [200, 200]
    handed_out = {response.json()["secret"] for response in responses}
    client_app.refresh_from_db()
    assert len(handed_out) == 2 and client_app.webhook_secret in handed_out
    assert client_app.previous_webhook_secret in handed_out - {client_app.webhook_secret}
    assert original not in (client_app.webhook_secret, client_app.previous_webhook_secret)


def test_an_expired_previous_secret_is_not_shown(api, client_app):
    ClientApp.objects.filter(pk=client_app.pk).update(
        previous_webhook_secret="whsec_old", previous_webhook_secret_expires_at=timezone.now() - timedelta(minutes=1)
    )
    assert api.get("/api/v1/webhook-endpoint").json()["previous_secret_expires_at"] is None


def test_another_apps_rotation_does_not_touch_mine(api, other_api, client_app):
    mine = client_app.webhook_secret
    assert other_api.post("/api/v1/webhook-endpoint/rotate-secret", {}, format="json").status_code == 200
    client_app.refresh_from_db()
    assert (client_app.webhook_secret, client_app.previous_webhook_secret) == (mine, "")


# --- OpenAPI -------------------------------------------------------------------------------------


@pytest.fixture
def schema(tmp_path):
    target = tmp_path / "openapi.yaml"
    GENERATOR_STATS.reset()
    output = io.StringIO()
    try:
        with contextlib.redirect_stderr(output):
            call_command("spectacular", "--fail-on-warn", "--validate", "--file", str(target))
    except (SchemaGenerationError, SchemaValidationError) as exc:
        pytest.fail(f"{type(exc).__name__}: {exc}\n{output.getvalue()}")
    finally:
        GENERATOR_STATS.reset()
    return yaml.safe_load(target.read_text())


def test_openapi_documents_the_events_endpoints_without_warnings(schema):
    paths = schema["paths"]
    assert set(paths["/api/v1/events"]) == {"get"}
    assert set(paths["/api/v1/events/{event_id}"]) == {"get"}
    assert set(paths["/api/v1/events/{event_id}/redeliver"]) == {"post"}
    assert set(paths["/api/v1/webhook-endpoint"]) == {"get", "patch"}
    assert set(paths["/api/v1/webhook-endpoint/rotate-secret"]) == {"post"}
    params = {param["name"] for param in paths["/api/v1/events"]["get"]["parameters"]}
    assert {"type", "delivery_state", "created_gte", "created_lt", "limit", "starting_after"} <= params
    assert "202" in paths["/api/v1/events/{event_id}/redeliver"]["post"]["responses"]
    rotate_params = {p["name"]: p for p in paths["/api/v1/webhook-endpoint/rotate-secret"]["post"]["parameters"]}
    assert rotate_params["Idempotency-Key"].get("required", False) is False
    components = schema["components"]["schemas"]
    assert set(components["Event"]["properties"]) == EVENT_FIELDS
    assert set(components["EventDetail"]["properties"]) == EVENT_FIELDS | {"delivery_attempts"}
    assert "secret" in components["WebhookEndpointSecret"]["properties"]
    assert "secret" not in components["WebhookEndpoint"]["properties"]
