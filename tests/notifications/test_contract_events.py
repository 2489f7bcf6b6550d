"""The contract's events that were missing or too narrow: `credits.low_balance` for every customer,
`auto_renewal.succeeded`, `invoice.rejected`; and the object (`object_id`) of the credits and
invoice events. Exactly one event per change: a rerun or a replay adds none."""

import json
from datetime import timedelta

import pytest
import responses
from django.utils import timezone

from billing import services as billing_services
from billing.models import Invoice
from billing.pse import base as pse
from credits.models import CreditLedgerEntry, CreditPurchase
from credits.services import (
    RenewalSettings,
    credit_account_for,
    credit_adjust,
    credit_auto_renewal_run,
    credit_auto_renewal_set,
    credit_consume,
    credit_expiring_notices_record,
    credit_lots_expire,
    credit_purchase_on_success,
)
from notifications.models import OutgoingEvent
from notifications.services import customer_preferences_update
from payments.models import Customer, GatewayCard, PaymentMethod
from tests.billing.conftest import NUBEFACT_TOKEN, NUBEFACT_URL, Wire, fixture_json, pay
from tests.credits.conftest import grant_lot, plan, purchase_body
from tests.culqi_wire import culqi_on_the_wire

pytestmark = pytest.mark.django_db


@pytest.fixture
def customer(client_app):
    return Customer.objects.create(client_app=client_app, email="ana@example.pe", name="Ana Quispe")


@pytest.fixture
def culqi(settings):
    with culqi_on_the_wire(settings) as wire:
        yield wire


@pytest.fixture
def nubefact(settings):
    settings.BILLING_PSE = "nubefact"
    settings.NUBEFACT_API_URL = NUBEFACT_URL
    settings.NUBEFACT_API_TOKEN = NUBEFACT_TOKEN
    with culqi_on_the_wire(settings, Wire) as wire:
        yield wire


@pytest.fixture
def card(customer):
    method = PaymentMethod.objects.create(
        client_app=customer.client_app, customer=customer, brand="Visa", last4="1111", exp_month=12, exp_year=2030
    )
    GatewayCard.objects.create(
        payment_method=method, gateway="culqi", gateway_customer_id="cus_test_1", gateway_card_id="crd_test_1"
    )
    return method


@pytest.fixture(autouse=True)
def default_threshold(settings):
    settings.CREDITS_LOW_BALANCE_THRESHOLD = 20


def events(type_: str) -> list[OutgoingEvent]:
    return list(OutgoingEvent.objects.filter(type=type_).order_by("created_at", "id"))


def consume(customer, amount: int, **kwargs):
    return credit_consume(customer=customer, amount=amount, **kwargs)


# --- credits.low_balance ---------------------------------------------------------------------------


def test_a_consumption_crossing_the_default_threshold_tells_once(customer):
    grant_lot(customer, 30)
    consume(customer, 5)  # 25: still at or above 20
    assert events("credits.low_balance") == []
    consumption = consume(customer, 10)  # 15: crossed
    consume(customer, 5)  # 10: already below, nothing more
    (event,) = events("credits.low_balance")
    (entry,) = consumption.taken
    assert event.client_app_id == customer.client_app_id
    assert event.object_id == customer.pk
    assert event.dedupe_key == entry.pk
    assert event.data == {"customer": customer.pk, "available": 15, "threshold": 20, "ledger_entry": entry.pk}


def test_landing_exactly_on_the_threshold_is_not_below_it(customer):
    grant_lot(customer, 30)
    consume(customer, 10)  # 20
    assert events("credits.low_balance") == []
    consume(customer, 1)  # 19
    assert len(events("credits.low_balance")) == 1


def test_the_customers_own_threshold_decides(customer):
    customer_preferences_update(customer=customer, low_balance_threshold=100)
    grant_lot(customer, 150)
    consume(customer, 40)  # 110
    assert events("credits.low_balance") == []
    consume(customer, 20)  # 90: below 100 (and far above the default 20)
    (event,) = events("credits.low_balance")
    assert (event.data["available"], event.data["threshold"]) == (90, 100)
    consume(customer, 80)  # 10: below the default too, but the customer's crossing was told already
    assert len(events("credits.low_balance")) == 1


def test_a_zero_threshold_never_tells(customer):
    customer_preferences_update(customer=customer, low_balance_threshold=0)
    grant_lot(customer, 30)
    consume(customer, 30)
    assert events("credits.low_balance") == []


def test_no_crossing_tells_nothing(customer):
    grant_lot(customer, 10)  # below the threshold from the start
    consume(customer, 5)
    grant_lot(customer, 100)  # 105: up, not down
    consume(customer, 50)  # 55: still above
    assert events("credits.low_balance") == []


def test_up_and_down_again_tells_twice(customer):
    grant_lot(customer, 30)
    consume(customer, 15)  # 15: first crossing
    grant_lot(customer, 20)  # 35: back above
    consume(customer, 20)  # 15: second crossing
    first, second = events("credits.low_balance")
    assert first.dedupe_key != second.dedupe_key
    assert [first.data["available"], second.data["available"]] == [15, 15]


def test_a_consumption_across_two_lots_tells_once_on_the_row_that_crossed(customer):
    grant_lot(customer, 10, days=5)  # spent first (expires first)
    grant_lot(customer, 20, days=30)
    consumption = consume(customer, 15)  # 30 -> 20 (first lot) -> 15 (second lot): the second row crossed
    first_row, crossing_row = consumption.taken
    (event,) = events("credits.low_balance")
    assert (first_row.balance_after, crossing_row.balance_after) == (20, 15)
    assert event.dedupe_key == crossing_row.pk


def test_a_replayed_consumption_request_tells_once(api, customer):
    grant_lot(customer, 30)
    path = f"/api/v1/customers/{customer.pk}/credit-consumptions"
    for _ in range(2):
        response = api.post(path, {"amount": 20}, format="json", HTTP_IDEMPOTENCY_KEY="use-1")
        assert response.status_code == 201, response.json()
    assert len(events("credits.low_balance")) == 1
    assert CreditLedgerEntry.objects.filter(entry_type="consumption").count() == 1


def test_an_expiry_crossing_the_threshold_tells_once_and_a_rerun_adds_nothing(customer):
    now = timezone.now()
    grant_lot(customer, 25, days=1, now=now)
    grant_lot(customer, 10, days=30, now=now)
    assert credit_lots_expire(now=now + timedelta(days=2)) == 25  # 35 -> 10
    assert credit_lots_expire(now=now + timedelta(days=2)) == 0
    (event,) = events("credits.low_balance")
    expiry = CreditLedgerEntry.objects.get(entry_type="expiry")
    assert (event.dedupe_key, event.data["available"], event.object_id) == (expiry.pk, 10, customer.pk)


def test_an_expiry_found_by_a_consumption_tells_once(customer):
    now = timezone.now()
    grant_lot(customer, 25, days=1, now=now)
    grant_lot(customer, 10, days=30, now=now)
    consume(customer, 5, now=now + timedelta(days=2))  # expires 25 (35 -> 10: crossed), then 10 -> 5
    (event,) = events("credits.low_balance")
    assert event.dedupe_key == CreditLedgerEntry.objects.get(entry_type="expiry").pk


def test_a_refund_claw_back_crossing_the_threshold_tells_once(api, customer, culqi):
    purchase = api.post(
        f"/api/v1/customers/{customer.pk}/credit-purchases",
        purchase_body("basic"),
        format="json",
        HTTP_IDEMPOTENCY_KEY="buy-1",
    ).json()
    assert purchase["status"] == "granted", purchase
    assert events("credits.low_balance") == []
    for _ in range(2):  # the replay of the same request changes nothing
        refund = api.post(
            f"/api/v1/payments/{purchase['payment']['id']}/refunds", {}, format="json", HTTP_IDEMPOTENCY_KEY="re-1"
        )
        assert refund.status_code == 201, refund.json()
    assert refund.json()["credits_clawed_back"] == 100
    (event,) = events("credits.low_balance")
    reversal = CreditLedgerEntry.objects.get(entry_type="refund_reversal")
    assert (event.dedupe_key, event.data["available"]) == (reversal.pk, 0)


def test_a_staff_adjustment_taking_credits_counts_too(customer):
    grant_lot(customer, 30)
    credit_adjust(customer=customer, amount=-20, reason="duplicate grant", actor="staff:1")
    assert len(events("credits.low_balance")) == 1


def test_the_auto_renewal_threshold_still_queues_a_renewal(customer, card, django_capture_on_commit_callbacks):
    grant_lot(customer, 80)
    credit_auto_renewal_set(
        customer=customer,
        settings=RenewalSettings(
            plan=plan("basic"),
            currency="PEN",
            payment_method=card,
            threshold=50,
            renew_on_expiry=False,
            max_per_day=2,
        ),
    )
    with django_capture_on_commit_callbacks() as callbacks:
        consume(customer, 40)  # 40: below the renewal's 50, not below the low-balance 20
    assert callbacks  # the renewal was queued, as before
    assert events("credits.low_balance") == []


# --- auto_renewal.succeeded -------------------------------------------------------------------------


def renewal_for(customer, card, *, threshold=50):
    return credit_auto_renewal_set(
        customer=customer,
        settings=RenewalSettings(
            plan=plan("basic"),
            currency="PEN",
            payment_method=card,
            threshold=threshold,
            renew_on_expiry=False,
            max_per_day=5,
        ),
    )


def test_a_successful_renewal_tells_once(customer, card, culqi):
    grant_lot(customer, 10)
    renewal = renewal_for(customer, card)
    purchase = credit_auto_renewal_run(account_id=renewal.account_id, reason="threshold")
    assert purchase.status == "granted"
    assert credit_auto_renewal_run(account_id=renewal.account_id, reason="threshold") is None  # 110: not due
    credit_purchase_on_success(purchase.payment)  # a late webhook for the same payment
    (event,) = events("auto_renewal.succeeded")
    assert event.object_id == customer.pk
    assert event.data == {
        "customer": customer.pk,
        "auto_renewal": renewal.pk,
        "purchase": purchase.pk,
        "payment": purchase.payment_id,
        "plan": "basic",
        "credits": 100,
        "balance": 110,
    }
    assert len(events("credits.granted")) == 1


def test_a_declined_renewal_or_an_ordinary_purchase_is_no_renewal_success(api, customer, card, culqi):
    grant_lot(customer, 10)
    renewal = renewal_for(customer, card)
    culqi.decline = True
    assert credit_auto_renewal_run(account_id=renewal.account_id, reason="threshold").status == "failed"
    culqi.decline = False
    response = api.post(
        f"/api/v1/customers/{customer.pk}/credit-purchases",
        purchase_body("basic"),
        format="json",
        HTTP_IDEMPOTENCY_KEY="buy-1",
    )
    assert response.json()["status"] == "granted"
    assert events("auto_renewal.succeeded") == []


# --- invoice.rejected ----------------------------------------------------------------------------


def nubefact_answers(wire, body):
    wire.mock.add(responses.POST, NUBEFACT_URL, body=json.dumps(body), status=200, content_type="application/json")


def test_a_rejected_document_tells_once_with_sunats_reason(api, nubefact):
    nubefact_answers(nubefact, fixture_json("nubefact_rejected_by_sunat.json"))
    invoice = Invoice.objects.get(payment_id=pay(api)["id"])
    assert invoice.status == "rejected"
    # Asked again, recorded again: final, nothing more.
    billing_services.invoice_submit(invoice_id=invoice.pk)
    billing_services._record_submission(
        invoice_id=invoice.pk,
        result=pse.SubmissionResult(outcome=pse.REJECTED, response_code="2017", description="again", raw={}),
    )
    (event,) = events("invoice.rejected")
    assert event.object_id == invoice.pk
    assert event.client_app_id == invoice.client_app_id
    assert event.data == {
        **billing_services.invoice_event_data(invoice),
        "sunat_response_code": "2017",
        "sunat_description": "El numero de RUC del receptor no existe.",
    }
    assert event.data["status"] == "rejected"


def test_an_accepted_document_is_not_rejected(api, nubefact):
    nubefact_answers(nubefact, fixture_json("nubefact_accepted.json"))
    invoice = Invoice.objects.get(payment_id=pay(api)["id"])
    assert invoice.status == "accepted"
    assert events("invoice.rejected") == []


# --- The object of credits and invoice events ------------------------------------------------------


def test_credits_and_invoice_events_are_about_the_customer_or_the_invoice(api, customer, culqi):
    purchase = api.post(
        f"/api/v1/customers/{customer.pk}/credit-purchases",
        purchase_body("basic"),
        format="json",
        HTTP_IDEMPOTENCY_KEY="buy-1",
    ).json()
    now = timezone.now()
    grant_lot(customer, 5, days=3, now=now)
    assert credit_expiring_notices_record(now=now) >= 1
    assert credit_expiring_notices_record(now=now) == 0
    credit_lots_expire(now=now + timedelta(days=4))
    for type_ in ("credits.granted", "credits.expiring", "credits.expired"):
        (event,) = events(type_)
        assert event.object_id == customer.pk, type_
        assert event.data["customer"] == customer.pk
    granted = events("credits.granted")[0]
    assert granted.data["purchase"] == purchase["id"]
    invoice = Invoice.objects.get(payment_id=purchase["payment"]["id"])
    (issued,) = events("invoice.issued")
    assert issued.object_id == invoice.pk
    assert issued.data == billing_services.invoice_event_data(invoice)
    assert CreditPurchase.objects.count() == 1
    assert credit_account_for(customer=customer).balance == 100
