"""Outgoing events in the admin: read-only pages with their delivery attempts, a Redeliver action,
and the client app's delivery health and signing-secret rotation."""

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from django.utils import timezone
from django.utils.formats import date_format

from notifications.models import OutgoingEvent
from payments.models import ClientApp
from tests.notifications.events_fixtures import add_attempt, count_redeliveries, make_event

pytestmark = pytest.mark.django_db

EVENTS = "/admin/notifications/outgoingevent/"


def lima(value) -> str:
    """How the admin prints a time: in America/Lima (UTC-5), Django's DATETIME_FORMAT."""
    return date_format(value.astimezone(ZoneInfo("America/Lima")), "DATETIME_FORMAT")


@pytest.fixture
def staff(client):
    user = get_user_model().objects.create_superuser("staff", "staff@example.com", "pw-staff-123")
    client.force_login(user)
    return client


@pytest.fixture
def redeliveries(monkeypatch):
    return count_redeliveries(monkeypatch)


def test_changelist_renders_filters_and_searches(staff, client_app, other_api):
    failed = make_event(client_app, type="payment.failed", state="failed", object_id="pay_failedone")
    delivered = make_event(client_app, type="invoice.issued", state="delivered", object_id="inv_one")
    theirs = make_event(other_api.client_app, type="payment.failed", state="failed", object_id="pay_theirs")

    page = staff.get(EVENTS)
    assert page.status_code == 200
    text = page.content.decode()
    assert all(event.pk in text for event in (failed, delivered, theirs))
    assert f'href="/admin/payments/payment/{quote(failed.object_id)}/change/"' in text  # the object, linked
    assert f'href="/admin/payments/clientapp/{quote(client_app.pk)}/change/"' in text
    assert "Redeliver" in text

    only_failed = staff.get(EVENTS, {"delivery_state__exact": "failed", "client_app__id__exact": client_app.pk})
    assert failed.pk in only_failed.content.decode()
    assert delivered.pk not in only_failed.content.decode() and theirs.pk not in only_failed.content.decode()
    by_type = staff.get(EVENTS, {"type": "invoice.issued"}).content.decode()
    assert delivered.pk in by_type and failed.pk not in by_type
    by_object = staff.get(EVENTS, {"q": "pay_theirs"}).content.decode()
    assert theirs.pk in by_object and failed.pk not in by_object
    by_id = staff.get(EVENTS, {"q": delivered.pk}).content.decode()
    assert delivered.pk in by_id and failed.pk not in by_id


def test_detail_is_read_only_with_its_attempts_in_lima_time(staff, client_app):
    event = make_event(client_app, state="failed", attempts=2, last_error="HTTP 500")
    add_attempt(event, 1, error="connect timeout (3 s)")
    add_attempt(event, 2, status_code=500)
    created = OutgoingEvent.objects.get(pk=event.pk).created_at

    page = staff.get(f"{EVENTS}{quote(event.pk)}/change/")

    assert page.status_code == 200
    text = page.content.decode()
    assert 'name="_save"' not in text and 'name="_continue"' not in text  # a view, not a form
    assert 'name="type"' not in text and 'name="delivery_state"' not in text
    assert "connect timeout (3 s)" in text and "answer 500" in text
    assert "Delivery attempts" in text
    assert "&quot;id&quot;: &quot;pay_x&quot;" in text  # the data as sent, pretty-printed
    assert f'href="/admin/payments/clientapp/{quote(client_app.pk)}/change/"' in text
    assert lima(created) in text  # shown in the project's time zone
    assert staff.get(f"{EVENTS}add/").status_code == 403
    assert staff.post(f"{EVENTS}{event.pk}/change/", {"type": "payment.succeeded"}).status_code == 403
    assert staff.get(f"{EVENTS}{event.pk}/delete/").status_code == 403
    event.refresh_from_db()
    assert event.type == "payment.succeeded"


def test_detail_shows_the_amounts_in_its_data_as_money(staff, client_app):
    refunded = make_event(client_app, type="payment.refunded", state="delivered")
    OutgoingEvent.objects.filter(pk=refunded.pk).update(
        data={"id": "pay_x", "amount": 250000, "currency": "PEN", "refund": {"amount": 1050, "currency": "PEN"}}
    )
    text = staff.get(f"{EVENTS}{quote(refunded.pk)}/change/").content.decode()
    assert "2,500.00 PEN (refund 10.50 PEN)" in text
    assert "&quot;amount&quot;: 250000" in text  # the data as sent keeps minor units


def test_redeliver_action_moves_failed_events_to_pending(staff, client_app, redeliveries):
    failed = make_event(client_app, state="failed", attempts=8, last_error="HTTP 500")
    skipped = make_event(client_app, state="skipped", object_id="pay_y", last_error="skipped: delivery disabled")

    response = staff.post(EVENTS, {"action": "redeliver", "_selected_action": [failed.pk, skipped.pk]}, follow=True)

    assert response.status_code == 200
    assert "Queued 2 event(s) for delivery." in response.content.decode()
    assert sorted(redeliveries.redelivered) == sorted([failed.pk, skipped.pk])
    for event in (failed, skipped):
        event.refresh_from_db()
        assert (event.delivery_state, event.attempts, event.last_error) == ("pending", 0, "")
        assert event.next_attempt_at <= timezone.now()
    assert LogEntry.objects.filter(object_id=failed.pk, change_message__startswith="Redelivery queued").exists()


def test_redeliver_action_leaves_events_of_an_app_without_endpoint(staff, client_app, redeliveries):
    ClientApp.objects.filter(pk=client_app.pk).update(webhook_url="")
    event = make_event(client_app, state="skipped", last_error="skipped: no webhook URL")

    response = staff.post(EVENTS, {"action": "redeliver", "_selected_action": [event.pk]}, follow=True)

    text = response.content.decode()
    assert "has no webhook URL, or delivery is off; not queued." in text
    assert "Queued 0 event(s) for delivery." in text
    assert redeliveries.redelivered == []
    event.refresh_from_db()
    assert event.delivery_state == "skipped"


def test_client_app_page_shows_delivery_health(staff, client_app, other_api):
    delivered = make_event(client_app, state="delivered", object_id="pay_1")
    make_event(client_app, state="delivered", object_id="pay_2")
    failing = make_event(client_app, state="failed", object_id="pay_3")
    make_event(client_app, state="pending", object_id="pay_4")
    old = make_event(client_app, state="failed", object_id="pay_5")
    OutgoingEvent.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=2))
    make_event(other_api.client_app, state="failed", object_id="pay_6")  # another app's: not counted
    add_attempt(delivered, 1, status_code=200)
    add_attempt(failing, 1, error="connection refused", minutes_ago=30)
    add_attempt(failing, 2, status_code=503, minutes_ago=5)

    page = staff.get(f"/admin/payments/clientapp/{client_app.pk}/change/")

    assert page.status_code == 200
    text = page.content.decode()
    assert "Event delivery health" in text
    assert re.search(r">2 delivered</a> · <a [^>]*>1 failed</a> · <a [^>]*>1 pending</a> · 0 skipped", text)
    assert f"?client_app__id__exact={client_app.pk}&amp;delivery_state__exact=failed" in text
    last = re.search(r"Last failure: (.*?)<", text).group(1)
    assert last.startswith(lima(failing.delivery_attempts.get(number=2).created_at) + " — ")
    assert f'href="/admin/notifications/outgoingevent/{quote(failing.pk)}/change/"' in text
    assert "(try 2): HTTP 503" in text
    assert "Delivery is off" not in text


def test_client_app_without_failures_says_so(staff, client_app):
    page = staff.get(f"/admin/payments/clientapp/{client_app.pk}/change/").content.decode()
    assert "Last 24 h:" in page and "Last failure: none." in page


def test_rotate_signing_secret_action_shows_the_new_secret_once(staff, client_app):
    old = client_app.webhook_secret

    response = staff.post(
        "/admin/payments/clientapp/",
        {"action": "rotate_signing_secret", "_selected_action": [client_app.pk]},
        follow=True,
    )

    client_app.refresh_from_db()
    new = client_app.webhook_secret
    assert new != old
    assert (client_app.previous_webhook_secret, client_app.previous_webhook_secret_expires_at is not None) == (
        old,
        True,
    )
    assert new in response.content.decode()
    page = staff.get(f"/admin/payments/clientapp/{client_app.pk}/change/").content.decode()
    assert new not in page and old not in page and new[:10] + "…" in page
