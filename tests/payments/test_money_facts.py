"""Every money fact recorded once, whichever path reports it (refunds, captures, stray charges).

The gateway is a stateful fake Culqi on the wire (tests/payments/fake_culqi.py) so that SmartPay's
books can be compared with the gateway's after each race. Races run real threads on PostgreSQL.
"""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Sum
from django.test import Client, TestCase
from django.utils import timezone

from billing.enums import DocumentType
from billing.models import Invoice
from credits.models import CreditAccount, CreditLedgerEntry, EntryType
from notifications.models import OutgoingEvent
from payments import breaker
from payments.models import Customer, Payment, Refund
from payments.services.refunds import settle_due_refunds
from tests.credits.conftest import plan
from tests.payments.fake_culqi import culqi_refund_webhook, fake_culqi


@pytest.fixture
def culqi(settings):
    with fake_culqi(settings) as gateway:
        yield gateway


@pytest.fixture
def customer(client_app):
    return Customer.objects.create(client_app=client_app, email="ana@example.pe", name="Ana Quispe")


def pay(api, amount=1000, key="pay-1"):
    body = {"amount": amount, "currency": "PEN", "email": "p@example.com", "source": {"gateway": "culqi", "token": "t"}}
    response = api.post("/api/v1/payments", body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == 201, response.content
    return Payment.objects.get(pk=response.json()["id"])


def buy_basic(api, customer) -> Payment:
    """A credit purchase of the basic plan (100 credits, S/ 29.00) paid at the fake Culqi."""
    plan("basic")  # seeded again where a transactional test flushed the tables
    body = {"plan": "basic", "currency": "PEN", "source": {"gateway": "culqi", "token": "tkn_test_x"}}
    response = api.post(
        f"/api/v1/customers/{customer.pk}/credit-purchases", body, format="json", HTTP_IDEMPOTENCY_KEY="buy"
    )
    assert response.status_code == 201, response.content
    payment = Payment.objects.get(customer=customer)
    assert payment.status == "succeeded"
    return payment


def refund(api, payment, amount=None, key="re-1"):
    body = {} if amount is None else {"amount": amount}
    return api.post(f"/api/v1/payments/{payment.pk}/refunds", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def deliver(refund_seen: dict) -> int:
    """Culqi posts the refund's event; its processing (the worker's job, eager here) runs on commit."""
    body = culqi_refund_webhook(refund_seen)
    with TestCase.captureOnCommitCallbacks(execute=True):
        return Client().post("/webhooks/culqi", body, content_type="application/json").status_code


def in_another_thread(work):
    """Run `work` on its own thread and database connection, and wait for it (a worker elsewhere)."""
    errors = []

    def run():
        try:
            work()
        except BaseException as error:  # re-raised in the test thread
            errors.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    if errors:
        raise errors[0]


def books_match_the_gateway(payment: Payment, culqi) -> None:
    payment.refresh_from_db()
    charge_id = payment.gateway_payment_id
    succeeded = payment.refunds.filter(status="succeeded")
    assert payment.amount_refunded == culqi.refunded(charge_id)
    assert payment.amount_refunded == (succeeded.aggregate(s=Sum("amount"))["s"] or 0)
    assert set(succeeded.values_list("gateway_refund_id", flat=True)) == culqi.refund_ids(charge_id)
    assert not payment.refunds.filter(status="pending").exists()
    notes = Invoice.objects.filter(payment=payment, document_type=DocumentType.CREDIT_NOTE)
    assert sorted(notes.values_list("refund_id", flat=True)) == sorted(succeeded.values_list("pk", flat=True))


# --- A refund webhook that arrives before the refund's own answer ----------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("share", ["half", "all"])
def test_refund_webhook_before_the_direct_answer_counts_the_refund_once(require_postgres, api, customer, culqi, share):
    payment = buy_basic(api, customer)
    amount = payment.amount // 2 if share == "half" else payment.amount
    culqi.during_refund = lambda seen: in_another_thread(lambda: deliver(seen))  # the webhook wins the race

    response = refund(api, payment, amount)

    assert response.status_code == 201, response.content
    assert response.json()["status"] == "succeeded"
    books_match_the_gateway(payment, culqi)
    assert Refund.objects.filter(payment=payment).count() == 1  # one row, not one per path
    assert payment.status == ("partially_refunded" if share == "half" else "refunded")
    # One event per change, whichever path got there first.
    refunded = OutgoingEvent.objects.filter(type="payment.refunded", object_id=payment.pk)
    assert [e.data["refund"]["id"] for e in refunded] == [Refund.objects.get(payment=payment).pk]
    assert refunded.get().data["status"] == payment.status and refunded.get().data["amount_refunded"] == amount
    assert OutgoingEvent.objects.filter(type="payment.succeeded", object_id=payment.pk).count() == 1
    clawed = CreditLedgerEntry.objects.filter(entry_type=EntryType.REFUND_REVERSAL).aggregate(s=Sum("amount"))["s"]
    assert -clawed == (50 if share == "half" else 100)  # half the refund, half the credits: taken once
    assert CreditAccount.objects.get(customer=customer).balance == 100 + clawed


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_refunds_while_webhooks_race_never_count_twice(require_postgres, api, api_key, culqi):
    from tests.concurrency import api_client, run_at_once

    payment = pay(api, amount=1000)
    culqi.during_refund = lambda seen: deliver(seen)  # every refund's webhook lands before its answer

    def send(index):
        response = api_client(api_key).post(
            f"/api/v1/payments/{payment.pk}/refunds", {"amount": 300}, format="json", HTTP_IDEMPOTENCY_KEY=f"r{index}"
        )
        return response.status_code, response.json().get("status")

    results = run_at_once(10, send)
    assert sorted(set(results)) == [(201, "succeeded"), (422, 422)], results  # never a 500, none left pending
    assert results.count((201, "succeeded")) == 3
    books_match_the_gateway(payment, culqi)
    assert payment.amount_refunded == 900 and payment.status == "partially_refunded"
    events = OutgoingEvent.objects.filter(type="payment.refunded", object_id=payment.pk)
    assert sorted(e.data["refund"]["id"] for e in events) == sorted(
        payment.refunds.filter(status="succeeded").values_list("pk", flat=True)
    )


# --- Answers lost ------------------------------------------------------------------------------------


def test_refund_answer_lost_then_webhook_records_it_once(api, culqi):
    payment = pay(api)
    culqi.lose_next_answer = True
    response = refund(api, payment, 400)
    assert response.status_code == 201
    assert response.json()["status"] == "pending"  # not failed: the gateway may have refunded
    # Still reserved: what is left to refund excludes it, so a retry cannot refund twice.
    assert refund(api, payment, 700, key="re-2").status_code == 422

    (seen_id,) = culqi.refund_ids(payment.gateway_payment_id)
    assert deliver({"id": seen_id, "charge_id": payment.gateway_payment_id, "amount": 400}) == 200
    books_match_the_gateway(payment, culqi)
    row = Refund.objects.get(payment=payment)
    assert (row.status, row.gateway_refund_id, row.origin) == ("succeeded", seen_id, "api")
    assert settle_due_refunds(now=timezone.now() + timedelta(hours=1)) == {}  # nothing left to settle
    assert refund(api, payment, 600, key="re-3").json()["status"] == "succeeded"
    books_match_the_gateway(payment, culqi)


def test_refund_answer_lost_is_settled_by_asking_the_gateway(api, culqi):
    payment = pay(api)
    culqi.lose_next_answer = True
    assert refund(api, payment, 400).json()["status"] == "pending"
    assert settle_due_refunds(now=timezone.now() + timedelta(minutes=5)) == {"settled": 1}
    books_match_the_gateway(payment, culqi)
    assert payment.status == "partially_refunded"


def test_a_refund_that_never_reached_the_gateway_fails_after_the_give_up_window(api, culqi, settings):
    payment = pay(api)
    Refund.objects.create(
        payment=payment, amount=300, currency="PEN", idempotency_key="lost", settle_after=timezone.now()
    )
    assert settle_due_refunds(now=timezone.now() + timedelta(minutes=5)) == {"pending": 1}  # not yet: ask again
    later = timezone.now() + timedelta(hours=settings.SETTLE_GIVE_UP_HOURS + 1)
    assert settle_due_refunds(now=later) == {"failed": 1}
    row = Refund.objects.get(idempotency_key="lost")
    assert (row.status, row.failure_code) == ("failed", "gateway_timeout")
    books_match_the_gateway(payment, culqi)
    assert refund(api, payment, 1000).json()["status"] == "succeeded"  # its reservation is released


# --- Refunds made in the gateway's dashboard ---------------------------------------------------------


def test_a_dashboard_refund_becomes_a_refund_with_claw_back_and_credit_note(api, customer, culqi):
    payment = buy_basic(api, customer)
    seen_id = culqi.dashboard_refund(payment.gateway_payment_id, payment.amount // 2)
    seen = {"id": seen_id, "charge_id": payment.gateway_payment_id, "amount": payment.amount // 2}
    assert deliver(seen) == 200
    assert deliver(seen) == 200  # the gateway's retry: no second effect

    books_match_the_gateway(payment, culqi)
    row = Refund.objects.get(payment=payment)
    assert (row.origin, row.status, row.gateway_refund_id) == ("gateway", "succeeded", seen_id)
    assert payment.status == "partially_refunded"
    assert CreditAccount.objects.get(customer=customer).balance == 50  # half of the 100 credits taken back
    listed = api.get(f"/api/v1/payments/{payment.pk}/refunds").json()["data"]
    assert [(r["id"], r["origin"]) for r in listed] == [(row.pk, "gateway")]

    rest = refund(api, payment, key="re-rest")  # the API can still refund what is left (no 409)
    assert rest.status_code == 201 and rest.json()["amount"] == payment.amount - payment.amount // 2
    books_match_the_gateway(payment, culqi)
    assert payment.status == "refunded"
    assert CreditAccount.objects.get(customer=customer).balance == 0


def test_a_failing_claw_back_never_rolls_back_the_record_of_a_refund(api, customer, culqi, monkeypatch, caplog):
    import credits.services

    payment = buy_basic(api, customer)

    def broken(payment, refund):
        CreditLedgerEntry.objects.filter(entry_type=EntryType.GRANT).delete()  # a write to be undone...
        raise RuntimeError("claw-back bug")  # ...by its savepoint only

    monkeypatch.setattr(credits.services, "credit_purchase_on_refund", broken)
    from payments import hooks

    monkeypatch.setitem(hooks._on_refund, "credit_purchase", [broken])
    with caplog.at_level("ERROR", logger="smartpay.alerts"):
        response = refund(api, payment, 1000)
    assert response.json()["status"] == "succeeded"
    books_match_the_gateway(payment, culqi)  # the refund and its credit note stand
    assert CreditLedgerEntry.objects.filter(entry_type=EntryType.GRANT).exists()
    assert "a refund handler failed" in caplog.text


# --- The breaker hears only real gateway calls -------------------------------------------------------


def test_a_local_cancel_does_not_close_an_open_breaker(api, client_app, settings):
    settings.CIRCUIT_FAILURE_THRESHOLD = 1
    breaker.reset("culqi")
    payment = Payment.objects.create(
        client_app=client_app,
        amount=1000,
        currency="PEN",
        email="p@example.com",
        gateway="culqi",
        status="requires_action",  # Culqi's 3-D Secure review: nothing exists at the gateway yet
        next_action={"type": "three_d_secure"},
    )
    breaker.record("culqi", "unavailable")
    assert breaker.state("culqi").state == "open"
    response = api.post(f"/api/v1/payments/{payment.pk}/cancel", {}, format="json", HTTP_IDEMPOTENCY_KEY="c")
    assert response.status_code == 200 and response.json()["status"] == "canceled"
    assert breaker.state("culqi").state == "open"  # canceling locally proved nothing about Culqi
    breaker.reset("culqi")


def test_a_late_success_of_an_old_call_does_not_close_an_open_breaker(settings):
    settings.CIRCUIT_FAILURE_THRESHOLD = 1
    breaker.reset("culqi")
    started_before = timezone.now()
    breaker.record("culqi", "unknown")
    assert breaker.state("culqi").state == "open"
    breaker.record("culqi", "succeeded", since=started_before - timedelta(seconds=1))
    assert breaker.state("culqi").state == "open"
    breaker.reset("culqi")


def test_planning_a_route_does_not_use_up_the_half_open_probe(settings):
    settings.CIRCUIT_FAILURE_THRESHOLD = 1
    settings.CIRCUIT_COOL_DOWN_SECONDS = 1
    breaker.reset("mercadopago")
    breaker.record("mercadopago", "unavailable")
    from payments.breaker import time as breaker_time

    real = breaker_time.time
    try:
        breaker_time.time = lambda: real() + 2  # past the cool-down: half-open
        assert breaker.may_call("mercadopago") and breaker.may_call("mercadopago")  # planning, twice
        assert breaker.allow_request("mercadopago") is True  # the probe is still there for the real call
        assert breaker.allow_request("mercadopago") is False
    finally:
        breaker_time.time = real
        breaker.reset("mercadopago")


# --- Saving a card whose answer was lost ------------------------------------------------------------


def test_saving_a_card_whose_answer_was_lost_is_504_not_card_not_saved(api, customer, settings):
    import requests
    import responses

    from payments.gateways import registry
    from payments.models import PaymentMethod

    settings.CULQI_API_BASE = "https://api.culqi.test"
    settings.GATEWAY_RETRY_MAX_TRIES = 1
    registry._cache.clear()
    with responses.RequestsMock() as mock:
        mock.post("https://api.culqi.test/v2/customers", body=requests.exceptions.ReadTimeout("lost"))
        response = api.post(
            f"/api/v1/customers/{customer.pk}/payment-methods",
            {"source": {"gateway": "culqi", "token": "tkn_test_x"}},
            format="json",
            HTTP_IDEMPOTENCY_KEY="save-1",
        )
    registry._cache.clear()
    assert response.status_code == 504, response.content
    assert response.json()["code"] == "gateway_timeout"
    assert "may or may not have been saved" in response.json()["detail"]
    assert not PaymentMethod.objects.exists()
