"""The sandbox receiver (/sandbox/receiver/): checks signatures like a client app, stores, lists."""

import json
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from notifications.delivery import dispatch_due
from notifications.models import DeliveryAttempt, DeliveryState
from notifications.signing import delivery_headers, event_body
from payments.gateways.simulator import receiver as receiver_views
from payments.gateways.simulator.models import ReceivedEvent
from payments.models import ClientApp
from tests.notifications.delivery_helpers import make_app, make_event, use_local_receiver

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def sandbox(settings):
    use_local_receiver(settings)
    settings.GATEWAY_MODE = "sandbox"
    return settings


def post(client, app, event, *, secrets=None, query="", timestamp=None):
    body = event_body(event)
    headers = delivery_headers(event, body, secrets or [app.webhook_secret], timestamp=timestamp)
    return client.post(
        f"/sandbox/receiver/{app.pk}{query}",
        body,
        content_type="application/json",
        headers={k: v for k, v in headers.items() if k != "Content-Type"},
    )


def test_a_signed_event_is_stored_and_answered_200(client):
    app = make_app()
    event = make_event(app, type="credits.granted", object_id="cus_1")
    response = post(client, app, event)
    assert response.status_code == 200
    (got,) = ReceivedEvent.objects.all()
    assert (got.client_app_id, got.event_id, got.event_type) == (app.pk, event.id, "credits.granted")
    assert (got.signature_ok, got.answered_status, got.fault) == (True, 200, "")
    assert json.loads(got.body)["data"]["id"] == "cus_1"
    assert got.headers["SmartPay-Event-Id"] == event.id and got.headers["signatures"] == 1
    assert "SmartPay-Signature" not in got.headers


def test_the_previous_secret_still_verifies_during_a_rotation(client):
    app = make_app()
    old = app.webhook_secret
    app.previous_webhook_secret, app.webhook_secret = old, "whsec_new0123456789"
    app.previous_webhook_secret_expires_at = timezone.now() + timedelta(hours=24)
    app.save()
    event = make_event(app)
    assert post(client, app, event, secrets=[old]).status_code == 200
    assert ReceivedEvent.objects.get().signature_ok


def test_a_bad_signature_is_stored_as_bad_and_answered_400(client):
    app = make_app()
    event = make_event(app)
    assert post(client, app, event, secrets=["whsec_not_the_apps"]).status_code == 400
    assert post(client, app, event, timestamp=int(time.time()) - 3600).status_code == 400  # replayed
    response = client.post(f"/sandbox/receiver/{app.pk}", event_body(event), content_type="application/json")
    assert response.status_code == 400
    assert list(ReceivedEvent.objects.values_list("signature_ok", "answered_status")) == [(False, 400)] * 3
    assert ReceivedEvent.objects.first().signature_problem == "no SmartPay-Signature header"


@pytest.mark.parametrize(("fail", "status"), [("500", 500), ("redirect", 302), ("timeout", 200), ("nonsense", 200)])
def test_faults_on_demand(client, monkeypatch, fail, status):
    slept = []
    monkeypatch.setattr(receiver_views, "_sleep", slept.append)
    app = make_app()
    response = post(client, app, make_event(app), query=f"?fail={fail}")
    assert response.status_code == status
    got = ReceivedEvent.objects.get()
    assert got.answered_status == status and got.signature_ok
    assert got.fault == ("" if fail == "nonsense" else fail)
    assert slept == ([0.5 + 2] if fail == "timeout" else [])


def test_unknown_app_and_wrong_method(client):
    assert client.post("/sandbox/receiver/app_nope", b"{}", content_type="application/json").status_code == 404
    app = make_app()
    assert client.get(f"/sandbox/receiver/{app.pk}").status_code == 405
    assert not ReceivedEvent.objects.exists()


def test_the_list_shows_the_newest_first_with_lima_times(client):
    app, other = make_app(), make_app()
    first, second = make_event(app, type="payment.succeeded"), make_event(app, type="payment.refunded")
    post(client, app, first)
    post(client, app, second, secrets=["whsec_wrong"])
    post(client, other, make_event(other, type="invoice.issued"))
    ReceivedEvent.objects.filter(event_id=first.id).update(received_at=timezone.now() - timedelta(minutes=5))

    page = client.get("/sandbox/receiver/")
    assert page.status_code == 200 and page["Content-Type"].startswith("text/html")
    text = page.content.decode()
    assert text.index("invoice.issued") < text.index("payment.refunded") < text.index("payment.succeeded")
    assert first.id in text and second.id in text and ">bad<" in text and ">ok<" in text
    for got in ReceivedEvent.objects.all():  # Lima is UTC-5 all year
        assert (got.received_at - timedelta(hours=5)).strftime("%Y-%m-%d %H:%M:%S") in text

    one_app = client.get(f"/sandbox/receiver/?app={other.pk}").content.decode()
    assert "invoice.issued" in one_app and "payment.succeeded" not in one_app


def test_absent_in_live_mode(client, settings):
    settings.GATEWAY_MODE = "live"
    app = make_app()
    assert post(client, app, make_event(app)).status_code == 404
    assert client.get("/sandbox/receiver/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_the_dispatcher_delivers_to_the_receiver_end_to_end(live_server, settings):
    """The real path: a dispatch POSTs to the receiver served over HTTP, which verifies and stores."""
    app = make_app()
    app.webhook_url = f"{live_server.url}/sandbox/receiver/{app.pk}"
    app.save()
    event = make_event(app, type="payment.succeeded", object_id="pay_e2e")
    failing = make_app()
    failing.webhook_url = f"{live_server.url}/sandbox/receiver/{failing.pk}?fail=500"
    failing.save()
    failed_try = make_event(failing)

    counts = dispatch_due()

    assert counts["delivered"] == 1 and counts["retry"] == 1
    event.refresh_from_db()
    assert event.delivery_state == DeliveryState.DELIVERED
    got = ReceivedEvent.objects.get(event_id=event.id)
    assert got.signature_ok and got.event_type == "payment.succeeded" and got.answered_status == 200
    assert DeliveryAttempt.objects.get(event=failed_try).status_code == 500
    assert ReceivedEvent.objects.get(event_id=failed_try.id).answered_status == 500


def test_seed_demo_points_the_demo_app_at_the_receiver(settings, capsys):
    settings.DEBUG = True
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:8000"
    call_command("seed_demo")
    app = ClientApp.objects.get(name="Demo client app")
    assert app.webhook_url == f"http://127.0.0.1:8000/sandbox/receiver/{app.pk}"
    out = capsys.readouterr().out
    assert f"Webhooks:   http://127.0.0.1:8000/sandbox/receiver/{app.pk}" in out
    assert "watch: http://127.0.0.1:8000/sandbox/receiver/" in out
    # A URL the developer chose is left alone.
    app.webhook_url = "https://hooks.example.com/smartpay"
    app.save()
    call_command("seed_demo")
    app.refresh_from_db()
    assert app.webhook_url == "https://hooks.example.com/smartpay"
