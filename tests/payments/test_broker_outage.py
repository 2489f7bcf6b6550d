"""A broker outage after a commit never undoes or hides it: a charge answers 201 with the payment (and
replays it), a webhook is acknowledged and kept, and the sweeps queue what was not queued once the
broker is back. Redis is "down" for real here: tasks are published to a closed port (tests/broker_outage.py)."""

import inspect
import logging
from datetime import timedelta

import pytest
from django.conf import settings
from django.core import mail
from django.utils import timezone

from billing import services as billing_services
from billing.models import Invoice
from payments import hooks
from payments.gateways import registry
from payments.models import Payment, WebhookEvent
from payments.services.webhooks import WEBHOOK_SWEEP_AFTER_SECONDS, webhook_sweep
from payments.tasks import process_webhook_event, retry_horizon_seconds
from smartpay.celery import app
from tests.broker_outage import broker_down
from tests.culqi_wire import culqi_on_the_wire
from tests.payments.conftest import MP_BASE
from tests.payments.test_webhooks import deliver_mp, make_payment, mp_payment

CHARGE = {
    "amount": 11800,
    "currency": "PEN",
    "email": "payer@example.pe",
    "description": "Plan Pro",
    "source": {"gateway": "culqi", "token": "tkn_test_visa"},
}
MP_PAYMENT = f"{MP_BASE}/v1/payments/1319840012"


@pytest.fixture
def wire(settings):
    with culqi_on_the_wire(settings) as culqi:
        yield culqi


@pytest.fixture
def effects(monkeypatch):
    """Every payment a success handler ran for (the effect a duplicate must not repeat)."""
    seen = []
    monkeypatch.setitem(hooks._on_success, "generic", [seen.append])
    return seen


def queueing_warnings(caplog) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "smartpay.queueing"]


# --- A charge -------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # real commits: on-commit work runs inside the request, as in production
def test_a_charge_committed_while_the_broker_is_down_answers_201_and_so_does_its_replay(api, wire, caplog):
    caplog.set_level(logging.WARNING, logger="smartpay.queueing")
    with broker_down():
        first = api.post("/api/v1/payments", CHARGE, format="json", HTTP_IDEMPOTENCY_KEY="outage-charge-1")
        assert first.status_code == 201, first.content
        payment = first.json()
        assert payment["status"] == "succeeded" and payment["id"].startswith("pay_")
        replay = api.post("/api/v1/payments", CHARGE, format="json", HTTP_IDEMPOTENCY_KEY="outage-charge-1")
    assert replay.status_code == 201 and replay["Idempotent-Replayed"] == "true"
    assert replay.json() == payment
    assert len(wire.charges()) == 1 and Payment.objects.count() == 1

    invoice = Invoice.objects.get(payment_id=payment["id"])  # issued in the payment's own transaction
    assert invoice.email_status == "pending" and mail.outbox == []  # its email could not be queued
    # Neither the invoice email nor the event dispatch could be queued; both only wait for their sweeps.
    warnings = queueing_warnings(caplog)
    assert sorted(w.task for w in warnings) == ["billing.email_invoice", "notifications.dispatch_events"]
    for warning in warnings:
        assert warning.levelno == logging.WARNING
        assert warning.error.startswith("OperationalError") and "127.0.0.1:1" in warning.error

    # The broker is back: the billing sweep emails it, once however often it runs.
    later = timezone.now() + timedelta(minutes=11)
    assert billing_services.billing_sweep(now=later)["emails"] == 1
    assert billing_services.billing_sweep(now=later)["emails"] == 0
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["payer@example.pe"]
    invoice.refresh_from_db()
    assert invoice.email_status == "sent" and invoice.email_attempts == 1


def test_nothing_waits_for_the_result_store_when_publishing():
    """Only the ping keeps a result: with Redis down, publishing never enters the result store's ~20 s
    reconnect loop (compose keeps results on the broker's Redis)."""
    assert settings.CELERY_TASK_IGNORE_RESULT is True
    ignored = {name: task.ignore_result for name, task in app.tasks.items() if not name.startswith("celery.")}
    assert ignored.pop("smartpay.ping") is False
    assert ignored and all(ignored.values()), ignored


def test_the_visibility_timeout_outlasts_the_longest_retry_countdown():
    """Redis hands a message nobody acknowledged within the visibility timeout to another worker,
    retries held until their countdown included: a shorter timeout would run them twice."""
    from billing.tasks import _countdown
    from payments.tasks import RETRY_CAP_SECONDS, retry_countdown

    caps = [inspect.signature(f).parameters["cap"].default for f in (retry_countdown, _countdown)]
    assert caps == [RETRY_CAP_SECONDS, RETRY_CAP_SECONDS]
    assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] >= 2 * RETRY_CAP_SECONDS


def test_the_webhook_sweep_is_scheduled():
    (entry,) = [e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == "payments.sweep_webhook_events"]
    assert entry["schedule"] <= WEBHOOK_SWEEP_AFTER_SECONDS
    assert "payments.sweep_webhook_events" in app.tasks


# --- A webhook ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_webhook_stored_while_the_broker_is_down_is_processed_by_the_sweep(client_app, gateways, effects, caplog):
    payment = make_payment(client_app)
    gateways.get(MP_PAYMENT, json=mp_payment(payment.id))
    caplog.set_level(logging.WARNING, logger="smartpay.queueing")
    soon = timezone.now() + timedelta(seconds=WEBHOOK_SWEEP_AFTER_SECONDS + 60)
    with broker_down():
        first = deliver_mp()
        assert first.status_code == 200 and first.json()["duplicate"] is False
        again = deliver_mp()  # the gateway's retry of the same delivery
        assert again.status_code == 200 and again.json()["duplicate"] is True
        event = WebhookEvent.objects.get()
        assert (event.status, event.attempts) == (WebhookEvent.RECEIVED, 0)
        assert [w.task for w in queueing_warnings(caplog)] == ["payments.process_webhook_event"]
        # A sweep while the broker is still down loses nothing: it is due again next time.
        assert webhook_sweep(now=soon) == {"due": 1, "queued": 0}
    assert len(gateways.calls) == 0 and effects == []

    assert webhook_sweep() == {"due": 0, "queued": 0}  # not left long enough yet
    assert webhook_sweep(now=soon) == {"due": 1, "queued": 1}  # eager here: processed at once
    event.refresh_from_db()
    payment.refresh_from_db()
    assert event.status == WebhookEvent.PROCESSED and event.payment_id == payment.id
    assert payment.status == "succeeded" and effects == [payment]

    late = deliver_mp()  # the gateway retries once more
    assert late.status_code == 200 and late.json() == {"received": True, "duplicate": True, "id": event.pk}
    assert webhook_sweep(now=soon) == {"due": 0, "queued": 0}
    assert len(gateways.calls) == 1 and effects == [payment]


@pytest.mark.django_db
def test_process_webhook_event_twice_has_one_effect(client_app, gateways, effects):
    payment = make_payment(client_app)
    gateways.get(MP_PAYMENT, json=mp_payment(payment.id))
    with broker_down():
        deliver_mp()  # stored, not processed
    event = WebhookEvent.objects.get()
    assert process_webhook_event.delay(event.pk).get() == WebhookEvent.PROCESSED
    assert process_webhook_event.delay(event.pk).get() == WebhookEvent.PROCESSED  # e.g. redelivered
    event.refresh_from_db()
    assert event.status == WebhookEvent.PROCESSED and event.attempts == 1
    assert effects == [payment] and len(gateways.calls) == 1


@pytest.mark.django_db
def test_two_overlapping_runs_of_one_event_have_one_effect(client_app, gateways, effects, monkeypatch):
    """A copy of the message runs to the end while the first run waits on the gateway (a worker
    thought lost, a sweep and a late message): both apply, under the payment's lock, once."""
    payment = make_payment(client_app)
    gateways.get(MP_PAYMENT, json=mp_payment(payment.id))
    with broker_down():
        deliver_mp()
    event = WebhookEvent.objects.get()
    adapter = registry.get_adapter("mercadopago")
    original = adapter.retrieve
    overlapped = []

    def retrieve_while_another_run_finishes(resource_id):
        result = original(resource_id)
        if not overlapped:
            overlapped.append("running")
            overlapped[0] = process_webhook_event.apply((event.pk,)).result
        return result

    monkeypatch.setattr(adapter, "retrieve", retrieve_while_another_run_finishes)
    assert process_webhook_event.delay(event.pk).get() == WebhookEvent.PROCESSED
    assert overlapped == [WebhookEvent.PROCESSED]
    event.refresh_from_db()
    payment.refresh_from_db()
    assert event.status == WebhookEvent.PROCESSED and event.attempts == 2
    assert payment.status == "succeeded" and effects == [payment]


@pytest.mark.django_db
def test_the_sweep_leaves_a_retry_on_its_backoff_and_continues_its_count(client_app, gateways, monkeypatch):
    """Tried 3 times (a retry may still be waiting): not due until its backoff could have run out;
    then queued with its retry count, so it ends `failed` after the task's last retry, not later."""
    make_payment(client_app)
    with broker_down():
        deliver_mp()
    event = WebhookEvent.objects.get()
    WebhookEvent.objects.filter(pk=event.pk).update(attempts=3, last_error="HTTP 503")
    sent = []
    monkeypatch.setattr(process_webhook_event, "apply_async", lambda args, **options: sent.append((args, options)))
    horizon = WEBHOOK_SWEEP_AFTER_SECONDS + retry_horizon_seconds(3)
    assert webhook_sweep(now=event.received_at + timedelta(seconds=horizon - 5))["due"] == 0
    assert webhook_sweep(now=event.received_at + timedelta(seconds=horizon + 5)) == {"due": 1, "queued": 1}
    assert sent == [((event.pk,), {"retries": 3})]
    WebhookEvent.objects.filter(pk=event.pk).update(status=WebhookEvent.FAILED)  # staff's to retry now
    assert webhook_sweep(now=event.received_at + timedelta(days=1))["due"] == 0
