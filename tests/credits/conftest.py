"""Credits fixtures: a customer, a saved Culqi card, and the Culqi wire mocked with `responses`."""

import importlib
import json
import time
from datetime import timedelta
from pathlib import Path

import pytest
import responses
from django.db import transaction
from django.utils import timezone

from credits.models import CreditKind, CreditLot, CreditPlan
from credits.services import _Ledger, _lock_account, credit_account_for
from payments.models import Customer, GatewayCard, PaymentMethod

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "culqi"
CULQI = "https://api.culqi.test/v2"


class CulqiWire:
    """Answers POST /v2/charges (captured, or declined while `decline` is set) and POST /v2/refunds."""

    def __init__(self, mock):
        self.mock = mock
        self.decline = False
        self.charge = json.loads((FIXTURES / "charge_captured.json").read_text())
        self.declined = json.loads((FIXTURES / "error_card_declined.json").read_text())
        self.refund = json.loads((FIXTURES / "refund.json").read_text())
        self.counter = 0
        self.delay = 0.0  # seconds the gateway takes to answer a charge

    def charges(self):
        return [call for call in self.mock.calls if call.request.url.endswith("/v2/charges")]

    def on_charge(self, request):
        sent = json.loads(request.body)
        self.counter += 1
        time.sleep(self.delay)
        if self.decline:
            return 402, {}, json.dumps({**self.declined, "charge_id": f"chr_test_declined{self.counter:08d}"})
        body = {
            **self.charge,
            "id": f"chr_test_{self.counter:016d}",
            "amount": sent["amount"],
            "currency_code": sent["currency_code"],
            "metadata": sent["metadata"],
        }
        return 201, {}, json.dumps(body)

    def on_refund(self, request):
        sent = json.loads(request.body)
        self.counter += 1
        body = {**self.refund, "id": f"ref_test_{self.counter:016d}", "amount": sent["amount"]}
        return 201, {}, json.dumps(body)


@pytest.fixture
def culqi(settings):
    settings.CULQI_API_BASE = "https://api.culqi.test"
    settings.GATEWAY_RETRY_MAX_TRIES = 1
    from payments.gateways import registry

    registry._cache.clear()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        wire = CulqiWire(mock)
        mock.add_callback(responses.POST, f"{CULQI}/charges", callback=wire.on_charge)
        mock.add_callback(responses.POST, f"{CULQI}/refunds", callback=wire.on_refund)
        yield wire
    registry._cache.clear()


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
