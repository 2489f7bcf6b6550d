"""Credits fixtures: a customer, a saved Culqi card, and the Culqi wire mocked with `responses`."""

import importlib
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from credits.models import CreditKind, CreditLot, CreditPlan
from credits.services import _Ledger, _lock_account, credit_account_for
from payments.models import Customer, GatewayCard, PaymentMethod
from tests.culqi_wire import culqi_on_the_wire


@pytest.fixture
def culqi(settings):
    with culqi_on_the_wire(settings) as wire:
        yield wire


@pytest.fixture
def customer(client_app):
    return Customer.objects.create(client_app=client_app, email="ana@example.pe", name="Ana Quispe")


@pytest.fixture
def card(customer):
    method = PaymentMethod.objects.create(
        client_app=customer.client_app, customer=customer, brand="Visa", last4="1111", exp_month=12, exp_year=2030
    )
    GatewayCard.objects.create(
        payment_method=method, gateway="culqi", gateway_customer_id="cus_test_1", gateway_card_id="crd_test_1"
    )
    return method


def plan(code: str) -> CreditPlan:
    """A seeded plan. Transactional tests elsewhere flush the tables, so seed again when needed."""
    if not CreditPlan.objects.filter(code=code).exists():
        from django.apps import apps

        importlib.import_module("credits.migrations.0002_seed_plans").seed(apps, None)
    return CreditPlan.objects.get(code=code)


def grant_lot(customer, credits: int, *, kind: str = CreditKind.PAID, days: float = 30, now=None) -> CreditLot:
    """A lot written the way the services write them (ledger row, cached balance), for setting up tests."""
    now = now or timezone.now()
    account = credit_account_for(customer=customer)
    with transaction.atomic():
        account = _lock_account(account.pk)
        lot = CreditLot.objects.create(
            account=account, kind=kind, granted=credits, remaining=credits, expires_at=now + timedelta(days=days)
        )
        ledger = _Ledger(account, actor="test")
        ledger.add(entry_type="grant", amount=credits, lot=lot, description="test grant")
        ledger.commit()
    return lot


def purchase_body(plan_code: str = "professional", currency: str = "PEN", **extra) -> dict:
    return {"plan": plan_code, "currency": currency, "source": {"gateway": "culqi", "token": "tkn_test_x"}, **extra}
