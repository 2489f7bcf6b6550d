"""The dispatcher: order per object, redelivery, queueing after commit, the task and its schedule."""

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.db import transaction
from django.utils import timezone

from notifications.delivery import dispatch_due
from notifications.models import DeliveryState, OutgoingEvent
from notifications.services import event_record, event_redeliver
from notifications.tasks import dispatch_events
from smartpay import queueing
from tests.notifications.delivery_helpers import make_app, make_event, serve, use_local_receiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver():
    yield from serve()


@pytest.fixture(autouse=True)
def _local_receiver_settings(settings):
    use_local_receiver(settings)


def state(event) -> str:
    event.refresh_from_db()
    return event.delivery_state


def test_an_objects_second_event_waits_until_its_first_is_delivered(receiver):
    app = make_app(receiver.url("/ok"))
    x1 = make_event(app, object_id="pay_X", type="payment.succeeded")
    x2 = make_event(app, object_id="pay_X", type="payment.refunded")
    y1 = make_event(app, object_id="pay_Y")
    receiver.behaviour.fail_event_ids = {x1.id}

    counts = dispatch_due()

    assert counts == {"delivered": 1, "retry": 1, "failed": 0, "skipped": 0, "waiting": 1, "busy": 0}
    assert (state(x1), state(x2), state(y1)) == ("pending", "pending", "delivered")
    assert x2.id not in receiver.event_ids()
    assert not x2.delivery_attempts.exists()
    assert x2.attempts == 0

    # Still waiting while the first is in its back-off, even when the second itself is due.
    assert dispatch_due()["waiting"] == 1
    assert x2.id not in receiver.event_ids()

    # The first goes through at its retry; the second follows it in the same run.
    receiver.behaviour.fail_event_ids = set()
    OutgoingEvent.objects.filter(pk=x1.pk).update(next_attempt_at=timezone.now())
    assert dispatch_due()["delivered"] == 2
    assert (state(x1), state(x2)) == ("delivered", "delivered")
    sent = [i for i in receiver.event_ids() if i in (x1.id, x2.id)]
    assert sent == [x1.id, x1.id, x2.id]


def test_a_failed_first_event_no_longer_holds_the_next_one(receiver):
    app = make_app(receiver.url("/ok"))
    x1 = make_event(app, object_id="pay_X", delivery_state=DeliveryState.FAILED)
    x2 = make_event(app, object_id="pay_X")
    assert dispatch_due()["delivered"] == 1
    assert (state(x1), state(x2)) == ("failed", "delivered")


def test_order_is_per_app_and_per_object(receiver):
    one, two = make_app(receiver.url("/ok")), make_app(receiver.url("/ok"))
    first = make_event(one, object_id="cus_1")
    other_app = make_event(two, object_id="cus_1")
    no_object = make_event(one, object_id="")
    receiver.behaviour.fail_event_ids = {first.id}
    dispatch_due()
    assert (state(first), state(other_app), state(no_object)) == ("pending", "delivered", "delivered")


def test_redeliver_starts_a_fresh_schedule_and_keeps_the_history(receiver):
    app = make_app(receiver.url("/ok"))
    event = make_event(app)
    dispatch_due()
    assert state(event) == "delivered"

    for previous in (DeliveryState.DELIVERED, DeliveryState.FAILED, DeliveryState.SKIPPED):
        OutgoingEvent.objects.filter(pk=event.pk).update(
            delivery_state=previous,
            attempts=8,
            last_error="HTTP 500",
            next_attempt_at=timezone.now() + timedelta(days=3),
        )
        before = timezone.now()
        again = event_redeliver(event)
        assert again.delivery_state == DeliveryState.PENDING
        assert again.attempts == 0 and again.last_error == "" and again.delivered_at is None
        assert before <= again.next_attempt_at <= timezone.now()

    assert dispatch_due()["delivered"] == 1
    event.refresh_from_db()
    assert event.delivery_state == DeliveryState.DELIVERED and event.attempts == 1
    assert list(event.delivery_attempts.values_list("number", "status_code")) == [(1, 200), (2, 200)]
    assert receiver.event_ids() == [event.id, event.id]


def test_recording_events_queues_one_dispatch_after_the_commit(monkeypatch, django_capture_on_commit_callbacks):
    queued = []
    monkeypatch.setattr(queueing, "enqueue", lambda task, *args, **options: queued.append(task.name))
    app = make_app("")
    with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
        event_record(client_app=app, type="credits.expiring", data={"id": "cl_1"}, dedupe_key="cl_1")
        event_record(client_app=app, type="credits.expiring", data={"id": "cl_2"}, dedupe_key="cl_2")
        assert queued == []  # not before the commit
    assert len(callbacks) == 1
    assert queued == ["notifications.dispatch_events"]

    # A repeat (same dedupe key) is no new event: nothing queued.
    queued.clear()
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        event_record(client_app=app, type="credits.expiring", data={"id": "cl_1"}, dedupe_key="cl_1")
    assert queued == []

    # Rolled back: nothing queued.
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        event_record(client_app=app, type="credits.expiring", data={"id": "cl_3"}, dedupe_key="cl_3")
        raise RuntimeError
    assert callbacks == [] and queued == []


def test_a_recorded_event_is_delivered_right_after_its_commit(receiver, django_capture_on_commit_callbacks):
    """Without a broker the queued dispatch runs at once: commit, then the POST."""
    app = make_app(receiver.url("/ok"))
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        event = event_record(client_app=app, type="invoice.issued", data={"id": "inv_1"})
        assert receiver.requests == []
    assert state(event) == "delivered"
    assert receiver.event_ids() == [event.id]


def test_the_task_dispatches_and_beat_runs_it_every_ten_seconds(receiver):
    event = make_event(make_app(receiver.url("/ok")))
    assert dispatch_events.delay().get()["delivered"] == 1
    assert state(event) == "delivered"
    schedule = {entry["task"]: entry for entry in django_settings.CELERY_BEAT_SCHEDULE.values()}
    assert schedule["notifications.dispatch_events"]["schedule"] == 10.0
