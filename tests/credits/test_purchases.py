"""Buying plans: grant math, granting once whichever path succeeds the payment, declines, claw-back on refund."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from credits.models import CreditAccount, CreditLedgerEntry, CreditLot, CreditPurchase
from credits.selectors import credit_ledger_drift
from credits.services import credit_purchase_on_success
from notifications.models import OutgoingEvent
from payments.gateways.base import ChargeResult, ChargeStatus
from payments.models import Payment
from payments.services.payments import payment_apply_gateway_result
from tests.credits.conftest import purchase_body

pytestmark = pytest.mark.django_db


def balance(customer) -> int:
    return CreditAccount.objects.get(customer=customer).balance


def buy(api, customer, body, key="buy-1"):
    return api.post(f"/api/v1/customers/{customer.pk}/credit-purchases", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_plans_list_shows_the_seeded_plans_with_computed_bonus(api):
    response = api.get("/api/v1/plans")
    assert response.status_code == 200
    plans = {row["code"]: row for row in response.json()}
    assert set(plans) == {"basic", "professional", "enterprise"}
    assert plans["basic"] == {
        "code": "basic",
        "object": "plan",
        "name": "Basic",
        "credits": 100,
        "bonus_percent": 0,
        "bonus_credits": 0,
        "total_credits": 100,
        "prices": {"PEN": 2900, "USD": 900},
        "validity_days": 365,
    }
    assert (plans["professional"]["bonus_credits"], plans["professional"]["total_credits"]) == (50, 550)
    assert (plans["enterprise"]["bonus_credits"], plans["enterprise"]["total_credits"]) == (400, 2400)


@pytest.mark.parametrize(
    ("code", "currency", "price", "paid", "bonus"),
    [
        ("basic", "PEN", 2900, 100, 0),
        ("professional", "PEN", 12900, 500, 50),
        ("enterprise", "USD", 13900, 2000, 400),
    ],
)
def test_buying_a_plan_grants_paid_and_bonus_lots(api, customer, culqi, code, currency, price, paid, bonus):
    before = timezone.now()
    response = buy(api, customer, purchase_body(code, currency))
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["object"] == "credit_purchase"
    assert body["status"] == "granted"
    assert (body["plan"], body["amount"], body["currency"]) == (code, price, currency)
    assert body["credits_granted"] == paid + bonus
    assert body["payment"]["status"] == "succeeded"
    assert body["payment"]["amount"] == price
    assert len(culqi.charges()) == 1

    lots = {lot.kind: lot for lot in CreditLot.objects.filter(account__customer=customer)}
    assert lots["paid"].granted == lots["paid"].remaining == paid
    if bonus:
        assert lots["bonus"].granted == lots["bonus"].remaining == bonus
    else:
        assert "bonus" not in lots
    for lot in lots.values():
        assert before + timedelta(days=365) <= lot.expires_at <= timezone.now() + timedelta(days=365)
        assert lot.payment_id == body["payment"]["id"]

    balance = api.get(f"/api/v1/customers/{customer.pk}/credits").json()
    assert balance["available"] == paid + bonus
    assert balance["expiring_soon"] == 0
    assert [entry.amount for entry in CreditLedgerEntry.objects.order_by("seq")] == [paid] + ([bonus] if bonus else [])
    assert OutgoingEvent.objects.get(type="credits.granted").data["credits"] == paid + bonus
    assert credit_ledger_drift() == []


def test_a_declined_purchase_grants_nothing(api, customer, culqi):
    culqi.decline = True
    response = buy(api, customer, purchase_body("basic"))
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "failed"
    assert body["credits_granted"] == 0
    assert body["payment"]["status"] == "failed"
    assert body["payment"]["failure"]["decline_code"] == "insufficient_funds"
    assert CreditLot.objects.count() == 0
    assert CreditLedgerEntry.objects.count() == 0


def test_purchase_needs_an_idempotency_key_and_a_known_plan(api, customer, culqi):
    no_key = api.post(f"/api/v1/customers/{customer.pk}/credit-purchases", purchase_body(), format="json")
    assert no_key.status_code == 400
    assert no_key.json()["code"] == "idempotency_key_required"
    unknown = buy(api, customer, purchase_body("platinum"))
    assert unknown.status_code == 400
    assert "plan" in unknown.json()["errors"]
    both = buy(api, customer, {**purchase_body(), "payment_method": "pm_x"}, key="buy-2")
    assert both.status_code == 400
    assert CreditPurchase.objects.count() == 0
    assert culqi.charges() == []


def test_replayed_purchase_request_charges_and_grants_once(api, customer, culqi):
    first = buy(api, customer, purchase_body(), key="same")
    second = buy(api, customer, purchase_body(), key="same")
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert len(culqi.charges()) == 1
    assert CreditLot.objects.count() == 2


def test_another_apps_customer_is_404(other_api, customer, culqi):
    response = buy(other_api, customer, purchase_body())
    assert response.status_code == 404
    assert other_api.get(f"/api/v1/customers/{customer.pk}/credits").status_code == 404
    assert culqi.charges() == []


def _processing_purchase(customer) -> tuple[CreditPurchase, Payment]:
    """A purchase whose payment is still `processing` (e.g. in review at the gateway)."""
    from credits.models import CreditPlan
    from credits.services import credit_account_for

    plan = CreditPlan.objects.get(code="professional")
    purchase = CreditPurchase.objects.create(
        client_app=customer.client_app,
        customer=customer,
        account=credit_account_for(customer=customer),
        plan=plan,
        amount=plan.price_pen,
        currency="PEN",
        paid_credits=plan.credits,
        bonus_credits=plan.bonus_credits,
        validity_days=plan.validity_days,
    )
    payment = Payment.objects.create(
        client_app=customer.client_app,
        customer=customer,
        status="processing",
        amount=plan.price_pen,
        currency="PEN",
        email=customer.email,
        metadata={"credit_purchase": purchase.pk},
        purpose="credit_purchase",
        gateway="culqi",
    )
    return purchase, payment


def _gateway_says_succeeded(payment: Payment) -> None:
    """What a webhook or reconciliation does: lock the payment, apply the gateway's view of it."""
    result = ChargeResult(
        status=ChargeStatus.SUCCEEDED, gateway_payment_id="chr_test_webhook01", amount=payment.amount, currency="PEN"
    )
    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment.pk)
        payment_apply_gateway_result(locked, result, gateway="culqi")


def test_purchase_succeeded_by_webhook_grants_once_and_a_replay_grants_nothing_more(customer):
    purchase, payment = _processing_purchase(customer)
    assert CreditLot.objects.count() == 0

    _gateway_says_succeeded(payment)
    purchase.refresh_from_db()
    assert purchase.status == "granted"
    assert purchase.payment_id == payment.pk
    assert sorted(CreditLot.objects.values_list("kind", "granted")) == [("bonus", 50), ("paid", 500)]
    assert balance(customer) == 550

    _gateway_says_succeeded(payment)  # the same webhook again, or reconciliation after the webhook
    with transaction.atomic():  # twice inside one transaction, as a replay inside a batch would
        locked = Payment.objects.select_for_update().get(pk=payment.pk)
        result = ChargeResult(
            status=ChargeStatus.SUCCEEDED, gateway_payment_id="chr_test_webhook01", amount=1, currency="PEN"
        )
        payment_apply_gateway_result(locked, result, gateway="culqi")
        payment_apply_gateway_result(locked, result, gateway="culqi")
    assert CreditLot.objects.count() == 2
    assert CreditLedgerEntry.objects.count() == 2
    assert balance(customer) == 550
    assert OutgoingEvent.objects.filter(type="credits.granted").count() == 1


def test_the_database_refuses_a_second_grant_for_one_payment(customer):
    purchase, payment = _processing_purchase(customer)
    _gateway_says_succeeded(payment)
    # Even if the handler's status check were bypassed, the unique (payment, kind) constraint holds.
    CreditPurchase.objects.filter(pk=purchase.pk).update(status="pending")
    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment.pk)
        credit_purchase_on_success(locked)
    assert CreditLot.objects.count() == 2
    assert balance(customer) == 550
    lot = CreditLot.objects.get(kind="paid")
    with pytest.raises(IntegrityError), transaction.atomic():
        CreditLot.objects.create(
            account=lot.account, kind="paid", granted=1, remaining=1, expires_at=lot.expires_at, payment=payment
        )


def test_refund_claws_back_unconsumed_credits_and_says_how_many(api, customer, culqi):
    purchase = buy(api, customer, purchase_body("professional")).json()
    consumed = api.post(
        f"/api/v1/customers/{customer.pk}/credit-consumptions",
        {"amount": 120},
        format="json",
        HTTP_IDEMPOTENCY_KEY="use-1",
    )
    assert consumed.status_code == 201
    # 120 taken: the 50 bonus first (same expiry), then 70 paid; 430 left.
    refund = api.post(
        f"/api/v1/payments/{purchase['payment']['id']}/refunds", {}, format="json", HTTP_IDEMPOTENCY_KEY="re-1"
    )
    assert refund.status_code == 201, refund.json()
    assert refund.json()["status"] == "succeeded"
    assert refund.json()["credits_clawed_back"] == 430
    balance = api.get(f"/api/v1/customers/{customer.pk}/credits").json()
    assert balance["available"] == 0
    reversals = CreditLedgerEntry.objects.filter(entry_type="refund_reversal")
    assert [entry.amount for entry in reversals] == [-430]
    assert reversals[0].refund_id == refund.json()["id"]
    assert credit_ledger_drift() == []


def test_partial_refund_claws_back_the_refunded_share(api, customer, culqi):
    purchase = buy(api, customer, purchase_body("professional")).json()  # 12900 for 550 credits
    payment_id = purchase["payment"]["id"]
    half = api.post(
        f"/api/v1/payments/{payment_id}/refunds", {"amount": 6450}, format="json", HTTP_IDEMPOTENCY_KEY="r1"
    )
    assert half.json()["credits_clawed_back"] == 275  # bonus 50 first, then 225 paid
    rest = api.post(f"/api/v1/payments/{payment_id}/refunds", {}, format="json", HTTP_IDEMPOTENCY_KEY="r2")
    assert rest.json()["credits_clawed_back"] == 275
    assert CreditLot.objects.filter(remaining__gt=0).count() == 0
    assert credit_ledger_drift() == []


def test_refund_of_an_ordinary_payment_has_no_claw_back(api, culqi):
    payment = api.post(
        "/api/v1/payments",
        {"amount": 2500, "currency": "PEN", "email": "p@example.com", "source": {"gateway": "culqi", "token": "t"}},
        format="json",
        HTTP_IDEMPOTENCY_KEY="p1",
    ).json()
    refund = api.post(f"/api/v1/payments/{payment['id']}/refunds", {}, format="json", HTTP_IDEMPOTENCY_KEY="r1")
    assert refund.status_code == 201
    assert refund.json()["credits_clawed_back"] is None
