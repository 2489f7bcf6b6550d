"""One event against a real local HTTP server: what is sent, what is stored, when it is tried again."""

import json
import logging
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from notifications.delivery import MAX_TRIES, RETRY_AT, dispatch_due, retry_delay
from notifications.models import DeliveryAttempt, DeliveryState, OutgoingEvent
from notifications.signing import verify_signature
from tests.notifications.delivery_helpers import closed_port, make_app, make_event, serve, use_local_receiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver():
    yield from serve()


@pytest.fixture(autouse=True)
def _local_receiver_settings(settings):
    use_local_receiver(settings)


def window(seconds: float) -> tuple[timedelta, timedelta]:
    return timedelta(seconds=seconds * 0.8), timedelta(seconds=seconds * 1.2)


def assert_retry_in(event, before, after, seconds):
    low, high = window(seconds)
    assert before + low <= event.next_attempt_at <= after + high, (event.next_attempt_at - before, seconds)


def test_a_2xx_is_delivered_signed_and_recorded(receiver):
    app = make_app(receiver.url("/ok"))
    event = make_event(app, object_id="pay_1")

    counts = dispatch_due()

    assert counts["delivered"] == 1
    event.refresh_from_db()
    assert event.delivery_state == DeliveryState.DELIVERED
    assert event.delivered_at is not None
    assert event.attempts == 1
    assert event.last_error == ""
    (attempt,) = DeliveryAttempt.objects.filter(event=event)
    assert (attempt.number, attempt.status_code, attempt.error, attempt.response_excerpt) == (1, 200, "", "thanks")
    assert attempt.url == receiver.url("/ok")
    assert attempt.duration_ms is not None and attempt.duration_ms < 5000

    (request,) = receiver.requests
    assert request.headers["SmartPay-Event-Id"] == event.id
    assert request.headers["Content-Type"] == "application/json"
    assert "SmartPay" in request.headers["User-Agent"]
    assert verify_signature(request.body, request.headers["SmartPay-Signature"], [app.webhook_secret])
    assert json.loads(request.body)["data"] == {"id": "pay_1", "amount": 2500, "currency": "PEN"}
    assert json.loads(request.body)["created_at"].endswith("Z")


@pytest.mark.parametrize(
    ("path", "status", "error"),
    [
        ("/fail", 500, "HTTP 500"),
        ("/slow", None, "read timeout (0.5 s)"),
        ("/redirect", 302, "redirect not followed (302 to /ok)"),
        (None, None, "connection refused"),
    ],
    ids=["500", "timeout", "redirect", "unreachable"],
)
def test_failures_are_recorded_and_retried_on_the_schedule_while_others_go_on(receiver, path, status, error):
    bad_app = make_app(receiver.url(path) if path else f"http://127.0.0.1:{closed_port()}/hooks")
    good_app = make_app(receiver.url("/ok"))
    bad = make_event(bad_app)
    good = make_event(good_app)

    before = timezone.now()
    counts = dispatch_due()
    after = timezone.now()

    assert counts["retry"] == 1 and counts["delivered"] == 1
    bad.refresh_from_db()
    assert bad.delivery_state == DeliveryState.PENDING
    assert bad.attempts == 1
    assert bad.last_error == error
    assert_retry_in(bad, before, after, RETRY_AT[1])
    (attempt,) = DeliveryAttempt.objects.filter(event=bad)
    assert (attempt.number, attempt.status_code, attempt.error) == (1, status, error)
    if path == "/fail":
        assert attempt.response_excerpt == "boom"
    if path == "/slow":
        assert attempt.duration_ms >= 450
    # The redirect was not followed: one request, to /redirect.
    if path == "/redirect":
        assert [r.path for r in receiver.requests if r.headers["SmartPay-Event-Id"] == bad.id] == ["/redirect"]
    # Nothing else waited for the failing app.
    good.refresh_from_db()
    assert good.delivery_state == DeliveryState.DELIVERED

    # Not due yet: a second dispatch leaves it alone.
    assert dispatch_due()["retry"] == 0
    assert DeliveryAttempt.objects.filter(event=bad).count() == 1


def test_each_failed_try_waits_per_the_schedule_then_failed_with_an_alert(receiver, caplog):
    app = make_app(receiver.url("/fail"))
    event = make_event(app)
    caplog.set_level(logging.INFO)

    for tries in range(1, MAX_TRIES + 1):
        OutgoingEvent.objects.filter(pk=event.pk).update(next_attempt_at=timezone.now())
        before = timezone.now()
        dispatch_due()
        after = timezone.now()
        event.refresh_from_db()
        assert event.attempts == tries
        if tries < MAX_TRIES:
            assert event.delivery_state == DeliveryState.PENDING
            assert_retry_in(event, before, after, RETRY_AT[tries] - RETRY_AT[tries - 1])
            assert not [r for r in caplog.records if r.name == "smartpay.alerts"]

    assert event.delivery_state == DeliveryState.FAILED
    assert event.last_error == "HTTP 500"
    assert list(event.delivery_attempts.values_list("number", flat=True)) == list(range(1, MAX_TRIES + 1))
    (alert,) = [r for r in caplog.records if r.name == "smartpay.alerts"]
    assert alert.levelno == logging.ERROR
    assert alert.event_id == event.id and alert.tries == MAX_TRIES
    # A failed event is never tried again by the dispatcher.
    OutgoingEvent.objects.filter(pk=event.pk).update(next_attempt_at=timezone.now() - timedelta(days=1))
    assert sum(dispatch_due().values()) == 0
    # No log line carries the secret or a signature.
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert app.webhook_secret not in text
    assert "v1=" not in text


def test_the_schedule_spans_about_a_day_with_jitter():
    assert RETRY_AT == (0, 60, 300, 1800, 7200, 21600, 43200, 86400)
    for failed_tries in range(1, MAX_TRIES):
        nominal = RETRY_AT[failed_tries] - RETRY_AT[failed_tries - 1]
        draws = [retry_delay(failed_tries).total_seconds() for _ in range(200)]
        assert all(nominal * 0.8 <= d <= nominal * 1.2 for d in draws)
        assert len(set(draws)) > 1  # jittered
    assert retry_delay(MAX_TRIES) is None
    assert sum(RETRY_AT[n] - RETRY_AT[n - 1] for n in range(1, MAX_TRIES)) == 24 * 3600


def test_the_excerpt_is_bounded(receiver):
    event = make_event(make_app(receiver.url("/big")))
    dispatch_due()
    (attempt,) = DeliveryAttempt.objects.filter(event=event)
    assert attempt.status_code == 200 and attempt.response_excerpt == "x" * 500


def test_apps_without_url_or_with_delivery_disabled_are_skipped(receiver):
    no_url = make_event(make_app(""))
    disabled = make_event(make_app(receiver.url("/ok"), webhook_enabled=False))

    counts = dispatch_due()

    assert counts["skipped"] == 2
    for event, reason in [(no_url, "skipped: no webhook URL"), (disabled, "skipped: delivery disabled")]:
        event.refresh_from_db()
        assert (event.delivery_state, event.last_error, event.attempts) == (DeliveryState.SKIPPED, reason, 0)
        assert not event.delivery_attempts.exists()
    assert receiver.requests == []


def test_a_run_is_bounded(receiver):
    app = make_app(receiver.url("/ok"))
    events = [make_event(app) for _ in range(5)]
    assert dispatch_due(max_events=2)["delivered"] == 2
    assert OutgoingEvent.objects.filter(pk__in=[e.pk for e in events], delivery_state="delivered").count() == 2
    started = time.monotonic()
    assert dispatch_due(max_seconds=0)["delivered"] == 0
    assert time.monotonic() - started < 1
    assert dispatch_due()["delivered"] == 3


def test_events_wait_for_their_turn(receiver):
    app = make_app(receiver.url("/ok"))
    later = make_event(app, next_attempt_at=timezone.now() + timedelta(minutes=5))
    assert sum(dispatch_due().values()) == 0
    later.refresh_from_db()
    assert later.delivery_state == DeliveryState.PENDING and receiver.requests == []
