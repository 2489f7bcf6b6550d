"""`payment.*` events: recorded in the transaction of the change, once per change, whatever path."""

import pytest
from django.test import Client, TestCase

from notifications.models import OutgoingEvent
from payments.models import Payment
from tests.payments.fake_culqi import culqi_charge_webhook, fake_culqi
from tests.payments.test_money_facts import in_another_thread, pay, refund


@pytest.fixture
def culqi(settings):
    with fake_culqi(settings) as gateway:
        yield gateway


def events(payment, type_=None):
    found = OutgoingEvent.objects.filter(object_id=payment.pk).order_by("created_at", "id")
    return list(found.filter(type=type_) if type_ else found)


def deliver_charge(charge_id: str, event_id: str | None = None) -> int:
    body = culqi_charge_webhook(charge_id, event_id)
    with TestCase.captureOnCommitCallbacks(execute=True):
        return Client().post("/webhooks/culqi", body, content_type="application/json").status_code


@pytest.mark.django_db
def test_a_succeeded_payment_is_told_once_with_the_api_view_of_it(api, culqi):
    payment = pay(api, amount=1500)
    (event,) = events(payment)
    assert event.type == "payment.succeeded" and event.client_app_id == payment.client_app_id
    shown = api.get(f"/api/v1/payments/{payment.pk}").json()
    assert {k: event.data[k] for k in ("id", "object", "status", "amount", "currency", "gateway_payment_id")} == {
        k: shown[k] for k in ("id", "object", "status", "amount", "currency", "gateway_payment_id")
    }
    # The gateway's webhook for the same charge, twice (a resend, then a new delivery): nothing new.
    assert deliver_charge(payment.gateway_payment_id) == 200
    assert deliver_charge(payment.gateway_payment_id, "evt_again") == 200
    assert [e.type for e in events(payment)] == ["payment.succeeded"]


@pytest.mark.django_db
def test_refunds_are_told_once_each_in_order_after_the_success(api, culqi):
    payment = pay(api, amount=1000)
    assert refund(api, payment, 300).json()["status"] == "succeeded"
    assert refund(api, payment, key="re-rest").json()["status"] == "succeeded"
    told = events(payment)
    assert [e.type for e in told] == ["payment.succeeded", "payment.refunded", "payment.refunded"]
    assert [e.data["refund"]["amount"] for e in told[1:]] == [300, 700]
    assert [e.data["status"] for e in told[1:]] == ["partially_refunded", "refunded"]


@pytest.mark.django_db
def test_a_decline_is_told_as_payment_failed(api, culqi):
    culqi.mock.replace("POST", "https://api.culqi.test/v2/charges", body=_declined(), status=402)
    response = api.post(
        "/api/v1/payments",
        {"amount": 1000, "currency": "PEN", "email": "p@example.com", "source": {"gateway": "culqi", "token": "t"}},
        format="json",
        HTTP_IDEMPOTENCY_KEY="declined",
    )
    payment = Payment.objects.get(pk=response.json()["id"])
    assert payment.status == "failed"
    (event,) = events(payment)
    assert event.type == "payment.failed"
    assert event.data["failure"]["decline_code"] == "insufficient_funds"


def _declined() -> str:
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "fixtures" / "culqi" / "error_card_declined.json"
    return json.dumps({**json.loads(path.read_text()), "charge_id": "chr_test_declined0000001"})


@pytest.mark.django_db(transaction=True)
def test_a_webhook_racing_the_direct_answer_makes_one_event(require_postgres, api, culqi):
    # The gateway's webhook is processed (by a worker elsewhere) before the charge's answer arrives.
    culqi.during_charge = lambda charge_id: in_another_thread(lambda: deliver_charge(charge_id))
    payment = pay(api, amount=2000)
    assert payment.status == "succeeded"
    assert [e.type for e in events(payment)] == ["payment.succeeded"]


@pytest.mark.django_db
def test_requires_action_is_told_once_per_attempt_and_canceled_once(client_app):
    from django.db import transaction

    from payments import state
    from payments.models import PaymentAttempt

    payment = Payment.objects.create(
        client_app=client_app, amount=1000, currency="PEN", email="p@example.com", gateway="culqi", status="processing"
    )

    def attempt(number):
        PaymentAttempt.objects.create(
            payment=payment, number=number, operation="charge", gateway="culqi", idempotency_key=f"k{number}"
        )

    def move(target):
        with transaction.atomic():
            locked = Payment.objects.select_for_update().get(pk=payment.pk)
            state.move(locked, target, strict=False)
            locked.save()

    attempt(1)
    move("requires_action")
    move("requires_action")  # recorded again by another path: no second event
    move("processing")  # the confirm went out...
    attempt(2)
    move("requires_action")  # ...and the gateway asked again: a new challenge, a new event
    move("canceled")
    move("canceled")
    assert [e.type for e in events(payment)] == [
        "payment.requires_action",
        "payment.requires_action",
        "payment.canceled",
    ]
    assert {e.data["status"] for e in events(payment, "payment.canceled")} == {"canceled"}


@pytest.mark.django_db
def test_event_times_are_utc_whatever_time_zone_the_path_runs_in(api, culqi):
    """A webhook or checkout page runs in Lima time; the event's data still reads like the API (…Z)."""
    from django.utils import timezone

    from payments.events import payment_data

    payment = pay(api, amount=1500)
    with timezone.override("America/Lima"):
        data = payment_data(Payment.objects.get(pk=payment.pk))
    assert data["created_at"].endswith("Z") and data["updated_at"].endswith("Z")
    assert all(attempt["created_at"].endswith("Z") for attempt in data["attempts"])
    (event,) = events(payment)
    assert event.data["created_at"].endswith("Z")
