"""The one writer of gateway facts, checked path by path (payments/services/recording.py).

1. Random interleavings of refunds (answered, answer lost, refused), refunds made in the gateway's
   dashboard, refund webhooks (delivered again), the settle job, sync and reconciliation end with
   SmartPay's books equal to the gateway's: one succeeded refund per gateway refund, the derived
   `amount_refunded`, the status, one credit note each, and credits clawed back by the rule.
2. A late webhook from the gateway a payment failed over from is a duplicate `StrayCharge`,
   recorded once and refunded once (or left for staff, who refund it from the admin).
3. A gateway object with our reference but another amount is refused by the settle job and by the
   checkout return alike.
6. A lost capture answer is settled by asking the gateway.

The gateways are mocked on the wire: a stateful fake Culqi (tests/payments/fake_culqi.py) or
`responses`. No threads: SQLite is fine.
"""

import copy
import itertools
import json
import time
from datetime import timedelta

import pytest
import requests
import responses
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Sum
from django.test import Client, TestCase
from django.utils import timezone
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from billing.enums import DocumentType
from billing.models import Invoice
from credits.models import CreditAccount, CreditLedgerEntry, CreditPurchase, EntryType
from credits.services import credit_consume
from payments import hooks
from payments.gateways.registry import get_adapter
from payments.models import Customer, Payment, PaymentAttempt, StrayCharge, WebhookEvent
from payments.services import recording
from payments.services.operations import payment_record_sync, payment_sync
from payments.services.refunds import settle_due_refunds
from payments.services.settlement import settle_due_payments
from tests.credits.conftest import plan
from tests.payments.conftest import CULQI_BASE, MP_BASE
from tests.payments.fake_culqi import FIXTURES, culqi_refund_webhook, fake_culqi
from tests.payments.test_webhooks import deliver_mp, mp_payment

pytestmark = pytest.mark.django_db

_keys = itertools.count()


def _key(prefix: str) -> str:
    return f"{prefix}-{next(_keys)}"


def notes_of(payment: Payment):
    return Invoice.objects.filter(payment=payment, document_type=DocumentType.CREDIT_NOTE)


# --- 1. Random interleavings end with the gateway's books ------------------------------------------

SHARE = st.one_of(st.sampled_from([2500, 5000, 10000]), st.integers(1, 10000))  # parts of 10,000
LATER = st.sampled_from([0, 2, 10, 120, 25 * 60])  # minutes from now; the last is past the give-up window
REFUND = st.one_of(st.sampled_from([None, 2500, 5000]), st.integers(1, 10000))  # None: all that is left
STEP = st.one_of(
    st.tuples(st.just("refund"), REFUND),
    st.tuples(st.just("refund_answer_lost"), REFUND),
    st.tuples(st.just("dashboard_refund"), SHARE),
    st.tuples(st.just("webhook"), st.integers(0, 9), st.booleans()),  # which refund; a new event id?
    st.tuples(st.just("settle_refunds"), LATER),
    st.tuples(st.just("settle_payments"), LATER),
    st.tuples(st.just("sync"), st.none()),
    st.tuples(st.just("reconcile"), st.none()),
)
CASE = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["credit_purchase", "credit_purchase", "plain"]),  # credit purchases twice as often
        "amount": st.integers(100, 5000),  # a plain payment's amount (a credit purchase is the plan's price)
        "consumed": st.integers(0, 100),  # credits spent before any refund (a credit purchase only)
        "steps": st.lists(STEP, min_size=3, max_size=10),
    }
)


@pytest.fixture
def culqi(settings):
    with fake_culqi(settings) as gateway:
        yield gateway


def _new_payment(api, client_app, case) -> Payment:
    """One fresh payment paid at the fake Culqi: a basic-plan credit purchase (100 credits, 2900) or
    a plain payment."""
    if case["kind"] == "plain":
        body = {
            "amount": case["amount"],
            "currency": "PEN",
            "email": "p@example.com",
            "source": {"gateway": "culqi", "token": "t"},
        }
        response = api.post("/api/v1/payments", body, format="json", HTTP_IDEMPOTENCY_KEY=_key("pay"))
        assert response.status_code == 201, response.content
        payment = Payment.objects.get(pk=response.json()["id"])
    else:
        plan("basic")
        customer = Customer.objects.create(client_app=client_app, email=f"{_key('c')}@example.pe", name="Ana")
        body = {"plan": "basic", "currency": "PEN", "source": {"gateway": "culqi", "token": "tkn_test_x"}}
        response = api.post(
            f"/api/v1/customers/{customer.pk}/credit-purchases", body, format="json", HTTP_IDEMPOTENCY_KEY=_key("buy")
        )
        assert response.status_code == 201, response.content
        payment = Payment.objects.get(customer=customer)
        if case["consumed"]:
            credit_consume(customer=customer, amount=case["consumed"], reference=_key("use"))
    assert payment.status == "succeeded" and payment.gateway_payment_id.startswith("chr_")
    return payment


def _deliver_refund_event(culqi, refund_id: str, event_id: str) -> None:
    """Culqi posts `refund.creation.succeeded`; its processing (eager) runs on commit."""
    seen = {"id": refund_id, **culqi.refunds[refund_id]}
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = Client().post(
            "/webhooks/culqi", culqi_refund_webhook(seen, event_id=event_id), content_type="application/json"
        )
    assert response.status_code == 200


def _api_refund(api, payment: Payment, share, *, lose: bool, culqi) -> None:
    payment.refresh_from_db()
    amount = None if share is None else max(1, payment.amount * share // 10000)
    reserved = payment.refunds.filter(status="pending").aggregate(s=Sum("amount"))["s"] or 0
    available = payment.amount_captured - payment.amount_refunded - reserved
    culqi.lose_next_answer = lose
    body = {} if amount is None else {"amount": amount}
    response = api.post(f"/api/v1/payments/{payment.pk}/refunds", body, format="json", HTTP_IDEMPOTENCY_KEY=_key("re"))
    culqi.lose_next_answer = False  # a refused refund leaves the flag set at the fake
    event(f"API refund{' (answer lost)' if lose else ''}: {response.status_code} {response.json().get('status', '')}")
    if response.status_code == 422:  # more than is left to refund by our books: refused before the gateway
        assert response.json()["code"] == "refund_exceeds_payment"
        assert payment.status == "refunded" or amount is None or amount > available
        return
    if response.status_code == 409:  # a fully refunded payment cannot be refunded
        assert payment.status == "refunded"
        return
    assert response.status_code == 201, response.content
    assert amount is None or amount <= available
    # Refused at the gateway when a dashboard refund we do not know of yet took part of the money.
    expected = {"pending", "failed"} if lose else {"succeeded", "failed"}
    assert response.json()["status"] in expected, response.json()


def _run_step(step, *, api, payment: Payment, culqi) -> None:
    kind, arg, *rest = step
    charge_id = payment.gateway_payment_id
    if kind in ("refund", "refund_answer_lost"):
        _api_refund(api, payment, arg, lose=kind == "refund_answer_lost", culqi=culqi)
    elif kind == "dashboard_refund":
        left = culqi.charges[charge_id]["amount"] - culqi.refunded(charge_id)
        if left:
            culqi.dashboard_refund(charge_id, max(1, left * arg // 10000))
    elif kind == "webhook":
        ids = [rid for rid, seen in culqi.refunds.items() if seen["charge_id"] == charge_id]
        if ids:
            refund_id = ids[arg % len(ids)]
            event_id = _key(f"evt_{refund_id}") if rest[0] else f"evt_{refund_id}"  # same id: a redelivery
            _deliver_refund_event(culqi, refund_id, event_id)
    elif kind == "settle_refunds":
        settle_due_refunds(now=timezone.now() + timedelta(minutes=arg))
    elif kind == "settle_payments":
        settle_due_payments(now=timezone.now() + timedelta(minutes=arg))
    elif kind == "sync":
        payment_sync(payment=Payment.objects.get(pk=payment.pk))
    elif kind == "reconcile":
        started = time.monotonic()
        result = get_adapter("culqi").retrieve(charge_id)
        with transaction.atomic():
            locked = Payment.objects.select_for_update().get(pk=payment.pk)
            payment_record_sync(locked, result, started=started, source=recording.RECONCILIATION)
    else:  # pragma: no cover
        raise AssertionError(kind)


def _owed_credits(total: int, refunded: int, captured: int) -> int:
    """credits.services.credit_purchase_on_refund's rule: the refunded share of the credits, rounded
    up; everything on a full refund."""
    return total if refunded >= captured else -(-total * refunded // captured)


@hypothesis_settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=CASE)
def test_random_interleavings_of_refund_paths_end_with_the_gateways_books(api, client_app, culqi, case):
    payment = _new_payment(api, client_app, case)
    charge_id = payment.gateway_payment_id
    for step in case["steps"]:
        _run_step(step, api=api, payment=payment, culqi=culqi)

    # Settle everything: past every pending refund's next check, not past the give-up window; then
    # the gateway delivers every refund's event once more.
    settle_due_payments(now=timezone.now() + timedelta(hours=2))
    for refund_id in sorted(culqi.refund_ids(charge_id)):
        _deliver_refund_event(culqi, refund_id, _key(f"evt_{refund_id}"))

    payment.refresh_from_db()
    event(f"ends {payment.status} ({case['kind']})")
    gateway_total = culqi.refunded(charge_id)
    succeeded = payment.refunds.filter(status="succeeded")
    assert payment.amount_refunded == gateway_total
    assert (succeeded.aggregate(s=Sum("amount"))["s"] or 0) == gateway_total
    ids = list(succeeded.values_list("gateway_refund_id", flat=True))
    assert sorted(ids) == sorted(culqi.refund_ids(charge_id))  # each gateway refund once, and no other
    for row in succeeded:
        assert row.amount == culqi.refunds[row.gateway_refund_id]["amount"]
    assert not payment.refunds.filter(status="pending").exists()
    assert payment.amount_captured == payment.amount
    if gateway_total == 0:
        assert payment.status == "succeeded"
    elif gateway_total == payment.amount_captured:
        assert payment.status == "refunded"
    else:
        assert payment.status == "partially_refunded"
    assert sorted(notes_of(payment).values_list("refund_id", flat=True)) == sorted(
        succeeded.values_list("pk", flat=True)
    )
    assert all(note.total == note.refund.amount for note in notes_of(payment).select_related("refund"))

    if case["kind"] == "credit_purchase":
        purchase = CreditPurchase.objects.get(payment=payment)
        clawed = -(
            CreditLedgerEntry.objects.filter(purchase=purchase, entry_type=EntryType.REFUND_REVERSAL).aggregate(
                s=Sum("amount")
            )["s"]
            or 0
        )
        unconsumed = 100 - case["consumed"]
        assert clawed == min(_owed_credits(100, gateway_total, payment.amount_captured), unconsumed)
        assert CreditAccount.objects.get(customer=payment.customer).balance == unconsumed - clawed


# --- 2. Failover and late webhooks: a duplicate charge is refunded once ---------------------------

MP_ID = "1319840012"


class FakeMercadoPagoPayment:
    """Mercado Pago's payment 1319840012 (19.99, approved, our reference) and its refunds, on `responses`."""

    def __init__(self, mock: responses.RequestsMock, reference: str):
        self.reference = reference
        self.refunded = 0
        self.refund_posts = 0
        mock.add_callback(responses.GET, f"{MP_BASE}/v1/payments/{MP_ID}", callback=self._get)
        mock.add_callback(responses.POST, f"{MP_BASE}/v1/payments/{MP_ID}/refunds", callback=self._refund)

    def _get(self, request):
        body = mp_payment(self.reference)
        if self.refunded:
            body.update(status="refunded", status_detail="refunded", transaction_amount_refunded=self.refunded / 100)
        return 200, {}, json.dumps(body)

    def _refund(self, request):
        self.refund_posts += 1
        amount = round(float(json.loads(request.body)["amount"]) * 100)
        self.refunded += amount
        body = json.loads((FIXTURES.parent / "mercadopago" / "refund.json").read_text())
        body.update(id=1245678901, payment_id=int(MP_ID), amount=amount / 100, status="approved")
        return 201, {}, json.dumps(body)


@pytest.fixture
def paid_at_culqi(client_app):
    """A payment that failed over from Mercado Pago (unavailable) and succeeded at Culqi."""
    payment = Payment.objects.create(
        client_app=client_app,
        amount=1999,
        amount_captured=1999,
        currency="PEN",
        email="ana@example.pe",
        gateway="culqi",
        gateway_payment_id="chr_test_failover0001",
        status="succeeded",
    )
    return payment


@pytest.fixture
def mercadopago_too(gateways, paid_at_culqi):
    return FakeMercadoPagoPayment(gateways, paid_at_culqi.pk)


def _unchanged_at_culqi(payment: Payment) -> None:
    payment.refresh_from_db()
    assert (payment.gateway, payment.gateway_payment_id) == ("culqi", "chr_test_failover0001")
    assert (payment.status, payment.amount_captured, payment.amount_refunded) == ("succeeded", 1999, 0)
    assert not payment.refunds.exists()


def test_a_late_approval_at_the_gateway_failed_over_from_is_refunded_once(paid_at_culqi, mercadopago_too, caplog):
    with caplog.at_level("ERROR", logger="smartpay.alerts"):
        assert deliver_mp(notification_id=1).json()["duplicate"] is False
        assert deliver_mp(notification_id=1).json()["duplicate"] is True  # Mercado Pago's retry
        assert deliver_mp(notification_id=2, action="payment.created").status_code == 200  # another event

    _unchanged_at_culqi(paid_at_culqi)
    stray = StrayCharge.objects.get()
    assert (stray.payment_id, stray.gateway, stray.gateway_payment_id) == (paid_at_culqi.pk, "mercadopago", MP_ID)
    assert (stray.reason, stray.status, stray.amount) == (StrayCharge.DUPLICATE, StrayCharge.REFUNDED, 1999)
    assert mercadopago_too.refund_posts == 1 and mercadopago_too.refunded == 1999
    events = WebhookEvent.objects.order_by("event_id")
    assert [(e.event_id, e.payment_id) for e in events] == [("1", paid_at_culqi.pk), ("2", paid_at_culqi.pk)]
    assert events[0].status == WebhookEvent.UNMATCHED  # visible: the payment does not own that charge
    assert caplog.text.count("a gateway holds money for a payment that does not own it") == 1

    assert settle_due_payments(now=timezone.now() + timedelta(hours=2)) == {}  # nothing left to do
    assert mercadopago_too.refund_posts == 1


def test_without_auto_refund_a_duplicate_waits_for_staff_who_refund_it_from_the_admin(
    paid_at_culqi, mercadopago_too, settings, caplog, client
):
    settings.STRAY_CHARGE_AUTO_REFUND = False
    with caplog.at_level("ERROR", logger="smartpay.alerts"):
        deliver_mp(notification_id=1)
        deliver_mp(notification_id=2)
    assert "a gateway holds money for a payment that does not own it" in caplog.text
    settle_due_payments(now=timezone.now() + timedelta(hours=2))  # the settle job's stray sweep too

    stray = StrayCharge.objects.get()
    assert (stray.reason, stray.status) == (StrayCharge.DUPLICATE, StrayCharge.OPEN)
    assert mercadopago_too.refund_posts == 0  # nothing sent
    _unchanged_at_culqi(paid_at_culqi)

    staff = get_user_model().objects.create_superuser("staff", "staff@example.com", "pw-staff-123")
    client.force_login(staff)
    response = client.post(
        "/admin/payments/straycharge/",
        {"action": "refund_at_gateway", "_selected_action": [stray.pk]},
        follow=True,
    )
    assert response.status_code == 200
    stray.refresh_from_db()
    assert (stray.status, stray.resolved_by) == (StrayCharge.REFUNDED, "staff:staff")
    assert mercadopago_too.refund_posts == 1 and mercadopago_too.refunded == 1999
    _unchanged_at_culqi(paid_at_culqi)
    client.post("/admin/payments/straycharge/", {"action": "refund_at_gateway", "_selected_action": [stray.pk]})
    assert mercadopago_too.refund_posts == 1  # a second click refunds nothing


# --- 3. A gateway object with our reference and another amount: refused on every path ------------


def _culqi_charge(reference: str, *, charge_id: str, amount: int, fixture: str = "charge_captured.json") -> dict:
    body = json.loads((FIXTURES / fixture).read_text())
    body.update(id=charge_id, amount=amount, current_amount=amount, currency_code="PEN")
    body["metadata"] = {"smartpay_payment_id": reference}
    return body


def _serve_other_object(gateways, gateway: str, payment: Payment) -> None:
    """The gateway's search by our reference finds an object of 9999 (our payment is 3456)."""
    if gateway == "culqi":
        found = _culqi_charge(payment.pk, charge_id="chr_test_other000001", amount=9999)
        page = {"data": [found], "paging": {"next": None, "cursors": {"after": None}, "remaining_items": 0}}
        gateways.get(f"{CULQI_BASE}/v2/charges", json=page)
    else:
        found = mp_payment(payment.pk, mp_id=555000111, amount=99.99)
        gateways.get(f"{MP_BASE}/v1/payments/search", json={"paging": {"total": 1}, "results": [found]})


@pytest.fixture
def success_effects(monkeypatch):
    effects = []
    monkeypatch.setitem(hooks._on_success, hooks.ANY_PURPOSE, [effects.append])
    monkeypatch.setitem(hooks._on_success, "generic", [effects.append])
    return effects


@pytest.mark.parametrize("gateway", ["culqi", "mercadopago"])
def test_settlement_refuses_an_object_of_another_amount_and_stops_asking(
    client_app, gateways, gateway, success_effects, caplog
):
    payment = Payment.objects.create(
        client_app=client_app,
        amount=3456,
        currency="PEN",
        email="ana@example.pe",
        gateway=gateway,
        status="processing",  # the charge's answer was lost
        settle_after=timezone.now(),
    )
    _serve_other_object(gateways, gateway, payment)

    with caplog.at_level("ERROR", logger="smartpay.alerts"):
        counts = settle_due_payments(now=timezone.now() + timedelta(minutes=1))

    assert counts == {"mismatch": 1}
    payment.refresh_from_db()
    assert (payment.status, payment.gateway_payment_id, payment.amount_captured) == ("processing", None, 0)
    assert payment.settle_after is None  # asking again would find the same object: staff must look
    assert not Invoice.objects.filter(payment=payment).exists()
    assert success_effects == []
    assert "does not match the payment's amount or currency" in caplog.text
    asked = len(gateways.calls)
    assert settle_due_payments(now=timezone.now() + timedelta(hours=2)) == {}
    assert len(gateways.calls) == asked


@pytest.mark.parametrize("gateway", ["culqi", "mercadopago"])
def test_checkout_return_refuses_an_object_of_another_amount(client_app, gateways, gateway, success_effects, caplog):
    payment = Payment.objects.create(
        client_app=client_app,
        amount=3456,
        currency="PEN",
        email="ana@example.pe",
        gateway=gateway,
        gateway_checkout_id="ord_test_x" if gateway == "culqi" else "1620846522-pref-x",
        status="pending",
        checkout_expires_at=timezone.now() + timedelta(hours=1),
        settle_after=timezone.now() + timedelta(hours=1),
        return_url="https://shop.example/thanks",
    )
    _serve_other_object(gateways, gateway, payment)

    with caplog.at_level("ERROR", logger="smartpay.alerts"):
        response = Client().get(f"/checkout/return/{payment.pk}")

    assert response.status_code == 302
    assert "status=pending" in response["Location"]
    payment.refresh_from_db()
    assert (payment.status, payment.gateway_payment_id, payment.amount_captured) == ("pending", None, 0)
    assert not Invoice.objects.filter(payment=payment).exists()
    assert success_effects == []
    assert "does not match the payment's amount or currency" in caplog.text


# --- 6. A capture whose answer was lost ------------------------------------------------------------

AUTH_ID = "chr_test_authorized001"


@pytest.fixture
def authorized_at_culqi(client_app):
    return Payment.objects.create(
        client_app=client_app,
        amount=1000,
        currency="PEN",
        email="ana@example.pe",
        capture=False,
        gateway="culqi",
        gateway_payment_id=AUTH_ID,
        status="authorized",
    )


def _capture_lost(gateways, payment: Payment, *, captured_at_gateway: bool) -> None:
    gateways.post(
        f"{CULQI_BASE}/v2/charges/{AUTH_ID}/capture",
        body=requests.exceptions.ReadTimeout("the answer was lost"),
    )
    held = _culqi_charge(payment.pk, charge_id=AUTH_ID, amount=1000, fixture="charge_authorized.json")
    if captured_at_gateway:
        held = copy.deepcopy(held)
        held.update(capture=True, capture_date=1715000100000)
    gateways.get(f"{CULQI_BASE}/v2/charges/{AUTH_ID}", json=held)


@pytest.mark.parametrize("captured_at_gateway", [True, False])
def test_a_lost_capture_answer_is_settled_by_asking_the_gateway(
    api, gateways, authorized_at_culqi, captured_at_gateway
):
    payment = authorized_at_culqi
    _capture_lost(gateways, payment, captured_at_gateway=captured_at_gateway)

    response = api.post(f"/api/v1/payments/{payment.pk}/capture", {}, format="json", HTTP_IDEMPOTENCY_KEY="cap")

    assert response.status_code == 504, response.content
    assert response.json()["code"] == "gateway_timeout"
    payment.refresh_from_db()
    assert payment.status == "authorized" and payment.settle_after is not None
    capture = PaymentAttempt.objects.get(payment=payment, operation="capture")
    assert capture.outcome == "unknown"

    counts = settle_due_payments(now=timezone.now() + timedelta(minutes=10))

    payment.refresh_from_db()
    capture.refresh_from_db()
    assert payment.settle_after is None
    if captured_at_gateway:
        assert counts == {"settled": 1}
        assert (payment.status, payment.amount_captured) == ("succeeded", 1000)
        assert Invoice.objects.filter(payment=payment, document_type=DocumentType.BOLETA).count() == 1
    else:
        assert counts == {"absent": 1}  # the gateway still holds an authorization: the capture did not happen
        assert (payment.status, payment.amount_captured) == ("authorized", 0)
        assert capture.outcome == "declined"
        assert not Invoice.objects.filter(payment=payment).exists()
    asked = len(gateways.calls)
    assert settle_due_payments(now=timezone.now() + timedelta(hours=2)) == {}  # not asked about again
    assert len(gateways.calls) == asked
