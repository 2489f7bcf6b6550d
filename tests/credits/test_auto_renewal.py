"""Automatic renewal: threshold and expiry triggers, one in flight, daily cap, pause and turning off."""

from datetime import timedelta

import pytest
from django.utils import timezone

from credits.models import CreditAccount, CreditAutoRenewal, CreditPurchase
from credits.services import (
    RENEWAL_PAUSE_AFTER_DECLINE,
    RenewalSettings,
    credit_account_for,
    credit_auto_renewal_run,
    credit_auto_renewal_set,
    credit_auto_renewals_sweep,
    credit_lots_expire,
)
from notifications.models import OutgoingEvent
from payments.models import PaymentMethod
from tests.credits.conftest import grant_lot, plan

pytestmark = pytest.mark.django_db


def enable(customer, card, *, threshold=50, renew_on_expiry=False, max_per_day=2, code="basic"):
    return credit_auto_renewal_set(
        customer=customer,
        settings=RenewalSettings(
            plan=plan(code),
            currency="PEN",
            payment_method=card,
            threshold=threshold,
            renew_on_expiry=renew_on_expiry,
            max_per_day=max_per_day,
        ),
    )


def balance(customer) -> int:
    return CreditAccount.objects.get(customer=customer).balance


def consume(api, customer, amount, key):
    return api.post(
        f"/api/v1/customers/{customer.pk}/credit-consumptions",
        {"amount": amount},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )


def test_put_get_delete(api, customer, card):
    path = f"/api/v1/customers/{customer.pk}/auto-renewal"
    assert api.get(path).status_code == 404
    body = {"plan": "professional", "currency": "USD", "payment_method": card.pk, "threshold": 100}
    response = api.put(path, body, format="json")
    assert response.status_code == 200, response.json()
    data = response.json()
    assert data["object"] == "auto_renewal"
    assert (data["plan"], data["currency"], data["payment_method"], data["threshold"]) == (
        "professional",
        "USD",
        card.pk,
        100,
    )
    assert (data["renew_on_expiry"], data["enabled"], data["max_per_day"], data["consecutive_declines"]) == (
        False,
        True,
        2,
        0,
    )
    assert api.get(path).json() == data
    assert (
        api.put(path, {**body, "threshold": None, "renew_on_expiry": True}, format="json").json()["threshold"] is None
    )
    assert api.delete(path).status_code == 204
    assert api.get(path).status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"threshold": None}, "threshold"),
        ({"threshold": 0}, "threshold"),
        ({"plan": "nope"}, "plan"),
        ({"payment_method": "pm_unknown"}, "payment_method"),
        ({"currency": "EUR"}, "currency"),
        ({"max_per_day": 50}, "max_per_day"),
        ({"surprise": True}, "surprise"),
    ],
)
def test_put_validation(api, customer, card, change, field):
    body = {"plan": "basic", "currency": "PEN", "payment_method": card.pk, "threshold": 10, **change}
    response = api.put(f"/api/v1/customers/{customer.pk}/auto-renewal", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert CreditAutoRenewal.objects.count() == 0


def test_another_customers_card_is_refused(api, customer, card, client_app):
    from payments.models import Customer

    other = Customer.objects.create(client_app=client_app, email="b@example.com")
    body = {"plan": "basic", "currency": "PEN", "payment_method": card.pk, "threshold": 10}
    response = api.put(f"/api/v1/customers/{other.pk}/auto-renewal", body, format="json")
    assert response.status_code == 400
    assert "payment_method" in response.json()["errors"]


def test_dropping_below_the_threshold_renews_once_after_commit(
    api, customer, card, culqi, django_capture_on_commit_callbacks
):
    grant_lot(customer, 80)
    enable(customer, card, threshold=50)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert consume(api, customer, 20, "c1").status_code == 201  # 60: still above
    assert callbacks == []
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert consume(api, customer, 20, "c2").status_code == 201  # 40: below 50 -> one renewal
        assert culqi.charges() == []  # nothing is charged before the consumption commits
    assert callbacks  # the renewal was queued after commit (its invoice email queues another callback)
    assert CreditPurchase.objects.filter(source="auto_renewal").count() == 1
    assert len(culqi.charges()) == 1
    purchase = CreditPurchase.objects.get(source="auto_renewal")
    assert purchase.status == "granted"
    assert purchase.payment.payment_method_id == card.pk
    assert purchase.payment.amount == 2900
    assert balance(customer) == 140
    # 40 is below the renewal threshold (50), not the low-balance one (CREDITS_LOW_BALANCE_THRESHOLD, 20).
    assert OutgoingEvent.objects.filter(type="credits.low_balance").count() == 0
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert consume(api, customer, 5, "c3").status_code == 201  # 135: above again, nothing queued
    assert callbacks == []
    assert len(culqi.charges()) == 1


def test_no_renewal_while_one_is_in_flight(customer, card, culqi):
    grant_lot(customer, 10)
    enable(customer, card, threshold=50)
    account = credit_account_for(customer=customer)
    CreditPurchase.objects.create(
        client_app=customer.client_app,
        customer=customer,
        account=account,
        plan=plan("basic"),
        source="auto_renewal",
        amount=2900,
        currency="PEN",
        paid_credits=100,
        validity_days=365,
    )
    assert credit_auto_renewal_run(account_id=account.pk, reason="threshold") is None
    assert culqi.charges() == []


def test_declines_pause_then_turn_renewal_off_after_three(customer, card, culqi):
    grant_lot(customer, 10, days=30)
    renewal = enable(customer, card, threshold=50, max_per_day=10)
    account_id = renewal.account_id
    culqi.decline = True
    now = timezone.now()

    first = credit_auto_renewal_run(account_id=account_id, reason="threshold", now=now)
    assert first.status == "failed"
    renewal.refresh_from_db()
    assert renewal.consecutive_declines == 1
    assert renewal.paused_until == now + RENEWAL_PAUSE_AFTER_DECLINE
    assert renewal.enabled is True

    # Paused: nothing is charged before the pause ends.
    assert credit_auto_renewal_run(account_id=account_id, reason="threshold", now=now + timedelta(hours=1)) is None
    assert len(culqi.charges()) == 1

    for step in (1, 2):
        later = now + step * (RENEWAL_PAUSE_AFTER_DECLINE + timedelta(minutes=1))
        assert credit_auto_renewal_run(account_id=account_id, reason="threshold", now=later).status == "failed"
    renewal.refresh_from_db()
    assert renewal.consecutive_declines == 3
    assert renewal.enabled is False
    assert "declined 3 times" in renewal.disabled_reason
    event = OutgoingEvent.objects.get(type="auto_renewal.failed")
    assert event.client_app_id == customer.client_app_id
    assert event.data["disabled"] is True
    assert event.data["customer"] == customer.pk
    assert len(culqi.charges()) == 3
    assert balance(customer) == 10

    # Off means off, until the client saves it again (which clears the count).
    culqi.decline = False
    assert credit_auto_renewal_run(account_id=account_id, reason="threshold", now=now + timedelta(days=3)) is None
    renewal = enable(customer, card, threshold=50)
    assert (renewal.enabled, renewal.consecutive_declines, renewal.paused_until) == (True, 0, None)


def test_a_success_resets_the_decline_count(customer, card, culqi):
    grant_lot(customer, 10)
    renewal = enable(customer, card, threshold=50, max_per_day=10)
    culqi.decline = True
    now = timezone.now()
    credit_auto_renewal_run(account_id=renewal.account_id, reason="threshold", now=now)
    culqi.decline = False
    later = now + RENEWAL_PAUSE_AFTER_DECLINE + timedelta(minutes=1)
    assert credit_auto_renewal_run(account_id=renewal.account_id, reason="threshold", now=later).status == "granted"
    renewal.refresh_from_db()
    assert (renewal.consecutive_declines, renewal.paused_until) == (0, None)


def test_daily_cap(customer, card, culqi):
    renewal = enable(customer, card, threshold=500, max_per_day=2, code="basic")  # 100 per renewal: stays below
    assert credit_auto_renewal_run(account_id=renewal.account_id, reason="threshold").status == "granted"
    assert credit_auto_renewal_run(account_id=renewal.account_id, reason="threshold").status == "granted"
    assert credit_auto_renewal_run(account_id=renewal.account_id, reason="threshold") is None
    assert len(culqi.charges()) == 2
    tomorrow = timezone.now() + timedelta(days=1, minutes=1)
    assert credit_auto_renewal_run(account_id=renewal.account_id, reason="threshold", now=tomorrow) is not None


def test_threshold_not_reached_means_no_renewal(customer, card, culqi):
    grant_lot(customer, 100)
    renewal = enable(customer, card, threshold=50)
    assert credit_auto_renewal_run(account_id=renewal.account_id, reason="threshold") is None
    assert culqi.charges() == []


def test_renew_on_expiry(customer, card, culqi, django_capture_on_commit_callbacks):
    now = timezone.now()
    grant_lot(customer, 30, days=1, now=now)
    enable(customer, card, threshold=None, renew_on_expiry=True)
    with django_capture_on_commit_callbacks(execute=True):
        assert credit_lots_expire(now=now + timedelta(days=2)) == 30
    purchase = CreditPurchase.objects.get(source="auto_renewal")
    assert purchase.status == "granted"
    assert balance(customer) == 100


def test_a_deleted_card_turns_renewal_off(customer, card, culqi):
    renewal = enable(customer, card, threshold=50)
    PaymentMethod.objects.filter(pk=card.pk).update(deleted_at=timezone.now())
    assert credit_auto_renewal_run(account_id=renewal.account_id, reason="threshold") is None
    renewal.refresh_from_db()
    assert renewal.enabled is False
    assert OutgoingEvent.objects.filter(type="auto_renewal.failed").count() == 1
    assert culqi.charges() == []


def test_sweep_queues_renewals_still_due_and_settles_stale_purchases(customer, card, culqi):
    renewal = enable(customer, card, threshold=50)
    stale = CreditPurchase.objects.create(
        client_app=customer.client_app,
        customer=customer,
        account_id=renewal.account_id,
        plan=plan("basic"),
        source="auto_renewal",
        amount=2900,
        currency="PEN",
        paid_credits=100,
        validity_days=365,
    )
    CreditPurchase.objects.filter(pk=stale.pk).update(created_at=timezone.now() - timedelta(hours=2))
    assert credit_auto_renewals_sweep() == 1  # the stale in-flight one is failed, then a renewal runs
    stale.refresh_from_db()
    assert stale.status == "failed"
    assert CreditPurchase.objects.filter(source="auto_renewal", status="granted").count() == 1
    assert balance(customer) == 100
