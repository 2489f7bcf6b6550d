"""Idempotency-Key after crashes: linked records, the in-progress lease, replays of the object's
current state, take-overs, and purging that never frees a key whose payment is unsettled."""

import json
import threading
from datetime import timedelta
from importlib import import_module

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from credits.models import CreditPurchase
from payments import breaker, idempotency
from payments.api.idempotency import LINKED_ANSWERS
from payments.api.serializers import PaymentCreateSerializer
from payments.models import Customer, IdempotencyRecord, Payment, Refund
from tests.concurrency import api_client, run_at_once
from tests.culqi_wire import CulqiWire, culqi_on_the_wire

pytestmark = pytest.mark.django_db

BODY = {"amount": 2500, "currency": "PEN", "email": "p@example.com", "source": {"gateway": "culqi", "token": "tkn_x"}}


class Killed(BaseException):
    """The process dying mid-request: not an Exception, so nothing in the request path handles it."""


class KillableWire(CulqiWire):
    """The Culqi wire, whose next charge or refund call can kill the request that sent it (`kill`)
    or fail it with an unexpected exception (`bug`)."""

    kill = False
    bug = False

    def on_charge(self, request):
        if self.kill:
            self.kill = False
            raise Killed
        if self.bug:
            self.bug = False
            raise RuntimeError("a bug in the request path, after the charge was sent")
        return super().on_charge(request)

    def on_refund(self, request):
        if self.kill:
            self.kill = False
            raise Killed
        return super().on_refund(request)

    def refunds(self):
        return [call for call in self.mock.calls if call.request.url.endswith("/v2/refunds")]


@pytest.fixture
def wire(settings):
    for name in ("culqi", "mercadopago"):
        breaker.reset(name)
    settings.IDEMPOTENCY_WAIT_SECONDS = 0  # a repeat while the first runs answers 409 at once
    with culqi_on_the_wire(settings, KillableWire) as culqi:
        yield culqi
    for name in ("culqi", "mercadopago"):
        breaker.reset(name)


def pay(api, key, body=BODY):
    return api.post("/api/v1/payments", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def past_the_lease(key):
    """Time passes: the record's lease (from its claim) ends."""
    claimed = timezone.now() - timedelta(seconds=idempotency.settings.IDEMPOTENCY_LEASE_SECONDS + 1)
    assert IdempotencyRecord.objects.filter(key=key).update(created_at=claimed) == 1


def killed(call):
    with pytest.raises(Killed):
        call()


# --- A request killed after its payment was created ----------------------------------------------


def test_a_killed_payment_is_answered_with_its_current_state_after_the_lease_never_charged_again(api, wire):
    wire.kill = True
    killed(lambda: pay(api, "k1"))
    payment = Payment.objects.get()
    record = IdempotencyRecord.objects.get(key="k1")
    assert (record.state, record.resource_type, record.resource_id) == ("in_progress", "payment", payment.pk)
    assert payment.status == "processing"

    within = pay(api, "k1")  # the lease still runs: the first request might be alive
    assert within.status_code == 409
    assert within.json()["code"] == "idempotency_key_in_use"

    past_the_lease("k1")
    after = pay(api, "k1")
    assert after.status_code == 201
    assert after["Idempotent-Replayed"] == "true"
    assert (after.json()["id"], after.json()["status"]) == (payment.pk, "processing")

    Payment.objects.filter(pk=payment.pk).update(status="succeeded", amount_captured=payment.amount)  # settled
    settled = pay(api, "k1")
    assert settled.status_code == 201
    assert (settled.json()["id"], settled.json()["status"]) == (payment.pk, "succeeded")
    assert settled.json() == pay(api, "k1").json()

    assert len(wire.charges()) == 1
    assert Payment.objects.count() == 1
    assert IdempotencyRecord.objects.get(key="k1").state == "in_progress"  # still linked, still kept


def test_a_request_killed_before_creating_anything_is_taken_over_after_the_lease_and_charges_once(
    api, wire, monkeypatch
):
    def die(*args, **kwargs):
        raise Killed

    with monkeypatch.context() as patched:
        patched.setattr(PaymentCreateSerializer, "is_valid", die)
        killed(lambda: pay(api, "k2"))
    record = IdempotencyRecord.objects.get(key="k2")
    assert (record.state, record.resource_id) == ("in_progress", None)
    assert Payment.objects.count() == 0

    assert pay(api, "k2").status_code == 409  # within the lease

    past_the_lease("k2")
    response = pay(api, "k2")
    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response
    assert response.json()["status"] == "succeeded"
    payment = Payment.objects.get()
    record = IdempotencyRecord.objects.get(key="k2")
    assert (record.state, record.resource_type, record.resource_id) == ("completed", "payment", payment.pk)
    assert record.created_at > timezone.now() - timedelta(minutes=1)  # a fresh lease when taken over

    replay = pay(api, "k2")
    assert replay.json() == response.json() and replay["Idempotent-Replayed"] == "true"
    assert len(wire.charges()) == 1


# --- A stored 5xx ---------------------------------------------------------------------------------


def test_a_stored_500_with_a_linked_payment_replays_the_payment_once_settled(api, wire):
    wire.bug = True
    api.raise_request_exception = False
    first = pay(api, "k3")
    assert first.status_code == 500
    payment = Payment.objects.get()
    record = IdempotencyRecord.objects.get(key="k3")
    assert (record.state, record.response_status, record.resource_id) == ("completed", 500, payment.pk)

    assert pay(api, "k3").json()["status"] == "processing"  # the outcome is unknown until settled
    Payment.objects.filter(pk=payment.pk).update(status="succeeded", amount_captured=payment.amount)
    replay = pay(api, "k3")
    assert replay.status_code == 201
    assert replay["Idempotent-Replayed"] == "true"
    assert (replay.json()["id"], replay.json()["status"]) == (payment.pk, "succeeded")
    assert len(wire.charges()) == 1


def test_a_stored_500_without_a_linked_object_is_still_replayed_as_500(api, client_app):
    IdempotencyRecord.objects.create(
        client_app=client_app,
        key="k4",
        fingerprint=idempotency.fingerprint("POST", "/api/v1/payments", BODY),
        state=IdempotencyRecord.COMPLETED,
        response_status=500,
        response_body={"code": "internal_error", "status": 500},
    )
    replay = pay(api, "k4")
    assert replay.status_code == 500
    assert replay.json()["code"] == "internal_error"
    assert Payment.objects.count() == 0


def test_a_completed_success_replays_its_stored_body_not_the_current_state(api, wire):
    first = pay(api, "k5")
    assert first.json()["status"] == "succeeded"
    Payment.objects.update(status="refunded")
    replay = pay(api, "k5")
    assert (replay.status_code, replay.json()) == (201, first.json())


# --- Refunds and credit purchases answer with their own serializer -------------------------------


def test_a_killed_refund_is_answered_with_the_refund_after_the_lease(api, wire):
    payment_id = pay(api, "pay").json()["id"]
    wire.kill = True
    killed(lambda: api.post(f"/api/v1/payments/{payment_id}/refunds", {}, format="json", HTTP_IDEMPOTENCY_KEY="r1"))
    refund = Refund.objects.get()
    assert IdempotencyRecord.objects.get(key="r1").resource_id == refund.pk

    past_the_lease("r1")
    again = api.post(f"/api/v1/payments/{payment_id}/refunds", {}, format="json", HTTP_IDEMPOTENCY_KEY="r1")
    assert again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert (again.json()["id"], again.json()["status"]) == (refund.pk, "pending")
    assert again.json()["object"] == "refund"
    assert len(wire.refunds()) == 1
    assert Refund.objects.count() == 1


def test_a_killed_credit_purchase_is_answered_with_the_purchase_after_the_lease(api, wire, client_app):
    customer = Customer.objects.create(client_app=client_app, email="ana@example.pe", name="Ana")
    path = f"/api/v1/customers/{customer.pk}/credit-purchases"
    body = {"plan": "basic", "currency": "PEN", "source": {"gateway": "culqi", "token": "tkn_x"}}
    wire.kill = True
    killed(lambda: api.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY="c1"))
    purchase = CreditPurchase.objects.get()
    payment = Payment.objects.get()
    assert IdempotencyRecord.objects.get(key="c1").resource_id == payment.pk  # linked to the money

    past_the_lease("c1")
    again = api.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY="c1")
    assert again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert (again.json()["id"], again.json()["status"]) == (purchase.pk, "pending")
    assert len(wire.charges()) == 1
    assert CreditPurchase.objects.count() == 1


def test_every_linked_answer_names_an_idempotent_view():
    for path, answer in LINKED_ANSWERS.items():
        module, name = path.rsplit(".", 1)
        view = getattr(import_module(module), name)
        assert hasattr(view.post, "__wrapped__"), path  # decorated with @idempotent
        assert view.serializer_class is not None, path
        assert answer.resource_type in idempotency.RESOURCE_MODELS, path


# --- link() --------------------------------------------------------------------------------------


def test_link_only_links_what_the_endpoint_creates_and_only_once(api, wire, client_app):
    payments = [Payment.objects.get(pk=pay(api, f"p{i}").json()["id"]) for i in range(2)]
    idempotency.link(payments[0])  # no active record: nothing happens

    def record(key):
        return IdempotencyRecord.objects.create(client_app=client_app, key=key, fingerprint="f")

    unlinked, refund_only, linked = record("a"), record("b"), record("c")
    with idempotency.active(unlinked, resource_type=None):  # an endpoint that creates no payment
        idempotency.link(payments[0])
    with idempotency.active(refund_only, resource_type="refund"):
        idempotency.link(payments[0])
    with idempotency.active(linked, resource_type="payment"):
        idempotency.link(payments[0])
        idempotency.link(payments[1])  # the first object wins
    rows = {r.key: (r.resource_type, r.resource_id) for r in IdempotencyRecord.objects.filter(key__in="abc")}
    assert rows == {"a": (None, None), "b": (None, None), "c": ("payment", payments[0].pk)}


def test_a_refused_request_that_had_created_its_object_keeps_the_key(client_app, api, wire):
    payment = Payment.objects.get(pk=pay(api, "p").json()["id"])
    record = IdempotencyRecord.objects.create(client_app=client_app, key="x", fingerprint="f")
    with idempotency.active(record, resource_type="payment"):
        idempotency.link(payment)
        idempotency.finish(record=record, status=422, body={"code": "gateway_rejected"})
    kept = IdempotencyRecord.objects.get(key="x")
    assert (kept.state, kept.response_status, kept.resource_id) == ("completed", 422, payment.pk)


def test_a_request_that_outlived_its_lease_does_not_overwrite_the_new_owner(client_app):
    record = IdempotencyRecord.objects.create(client_app=client_app, key="slow", fingerprint="f")
    past_the_lease("slow")
    taken = idempotency.begin(client_app=client_app, key="slow", request_fingerprint="f")
    assert taken.pk == record.pk
    idempotency.finish(record=record, status=201, body={"late": True})  # the old owner, finally done
    assert IdempotencyRecord.objects.get(key="slow").state == "in_progress"
    idempotency.finish(record=taken, status=201, body={"new": True})
    assert IdempotencyRecord.objects.get(key="slow").response_body == {"new": True}


# --- Purge ---------------------------------------------------------------------------------------


def test_purge_keeps_records_of_unsettled_payments_in_one_delete(api, wire, client_app):
    ids = {key: pay(api, key, {**BODY, "amount": 2500 + n}).json()["id"] for n, key in enumerate(["open", "done"])}
    Payment.objects.filter(pk=ids["open"]).update(status="processing")
    IdempotencyRecord.objects.create(client_app=client_app, key="unlinked", fingerprint="f")
    IdempotencyRecord.objects.create(client_app=client_app, key="young", fingerprint="f")
    old = timezone.now() - timedelta(hours=25)
    IdempotencyRecord.objects.exclude(key="young").update(created_at=old)

    with CaptureQueriesContext(connection) as queries:
        assert idempotency.purge_expired() == 2
    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["DELETE"]
    assert set(IdempotencyRecord.objects.values_list("key", flat=True)) == {"open", "young"}

    Payment.objects.filter(pk=ids["open"]).update(status="failed")  # settled: now it can go
    assert idempotency.purge_expired() == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["young"]


def test_purge_keeps_records_of_pending_refunds(api, wire):
    payment_id = pay(api, "pay").json()["id"]
    wire.kill = True
    killed(lambda: api.post(f"/api/v1/payments/{payment_id}/refunds", {}, format="json", HTTP_IDEMPOTENCY_KEY="r"))
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=25))
    assert idempotency.purge_expired() == 1  # the payment's record (succeeded); the refund is pending
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["r"]
    Refund.objects.update(status="succeeded")
    assert idempotency.purge_expired() == 1


# --- Concurrency (PostgreSQL) ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_retries_past_the_lease_take_over_once(require_postgres, client_app, api_key, wire, monkeypatch):
    IdempotencyRecord.objects.create(
        client_app=client_app, key="dead", fingerprint=idempotency.fingerprint("POST", "/api/v1/payments", BODY)
    )
    past_the_lease("dead")
    # Both retries have read the abandoned record before either tries to take it over.
    both_read = threading.Barrier(2)
    take_over = idempotency._take_over

    def after_both_read(record):
        both_read.wait(timeout=10)
        return take_over(record)

    monkeypatch.setattr(idempotency, "_take_over", after_both_read)
    wire.delay = 0.5  # the winner is still charging when the loser looks again

    def retry(index):
        response = pay(api_client(api_key), "dead")
        return response.status_code, response.get("Idempotent-Replayed"), json.loads(response.content)

    results = sorted(run_at_once(2, retry), key=lambda r: (r[1] is not None, r[0]))
    assert len(wire.charges()) == 1
    assert Payment.objects.count() == 1
    (won_status, won_replayed, won), (lost_status, _, lost) = results
    assert (won_status, won_replayed) == (201, None)
    assert won["id"] == Payment.objects.get().pk
    # The loser found a fresh lease: 409 at once (IDEMPOTENCY_WAIT_SECONDS = 0), or the winner's answer.
    assert (lost_status == 409 and lost["code"] == "idempotency_key_in_use") or lost == won
