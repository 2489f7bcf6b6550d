"""Several dispatchers at once (threads, each with its own PostgreSQL connection): every event is
sent exactly once, and an object's events still arrive in order."""

from collections import Counter, defaultdict

import pytest

from notifications.delivery import dispatch_due
from notifications.models import DeliveryAttempt, DeliveryState, OutgoingEvent
from tests.concurrency import run_at_once
from tests.notifications.delivery_helpers import make_app, serve, use_local_receiver

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def receiver():
    yield from serve()


@pytest.fixture(autouse=True)
def _local_receiver_settings(settings):
    use_local_receiver(settings)


def bulk_events(app, objects: list[str]) -> list[OutgoingEvent]:
    """Committed rows, as event_record leaves them (without its after-commit dispatch)."""
    return OutgoingEvent.objects.bulk_create(
        [
            OutgoingEvent(client_app=app, type="payment.succeeded", data={"id": obj, "n": n}, object_id=obj)
            for n, obj in enumerate(objects)
        ]
    )


def test_two_dispatchers_send_each_of_50_events_exactly_once(require_postgres, receiver):
    receiver.behaviour.latency = 0.01  # each send holds its row a little: the dispatchers overlap
    app = make_app(receiver.url("/ok"))
    events = bulk_events(app, [f"pay_{n}" for n in range(50)])

    results = run_at_once(2, lambda index: dispatch_due())

    per_event = Counter(receiver.event_ids())
    assert set(per_event) == {e.id for e in events}
    assert set(per_event.values()) == {1}, [i for i, n in per_event.items() if n > 1]
    assert sum(r["delivered"] for r in results) == 50
    assert all(r["delivered"] > 0 for r in results), results  # both did work
    assert OutgoingEvent.objects.filter(delivery_state=DeliveryState.DELIVERED).count() == 50
    assert DeliveryAttempt.objects.count() == 50
    assert set(DeliveryAttempt.objects.values_list("number", flat=True)) == {1}


def test_concurrent_dispatchers_keep_each_objects_order(require_postgres, receiver):
    receiver.behaviour.latency = 0.005
    app = make_app(receiver.url("/ok"))
    objects = [f"pay_{n % 8}" for n in range(40)]  # 8 objects, 5 events each, interleaved
    bulk_events(app, objects)
    in_order = list(OutgoingEvent.objects.order_by("created_at", "id").values_list("id", "object_id"))
    created_order = {event_id: i for i, (event_id, _obj) in enumerate(in_order)}
    object_of = dict(in_order)

    for _ in range(10):  # a blocked event waits for a later pass
        if not OutgoingEvent.objects.filter(delivery_state=DeliveryState.PENDING).exists():
            break
        run_at_once(3, lambda index: dispatch_due())

    assert OutgoingEvent.objects.filter(delivery_state=DeliveryState.DELIVERED).count() == 40
    received = receiver.event_ids()
    assert Counter(received).most_common(1)[0][1] == 1
    arrivals = defaultdict(list)
    for event_id in received:
        arrivals[object_of[event_id]].append(created_order[event_id])
    for obj, order in arrivals.items():
        assert order == sorted(order), obj
