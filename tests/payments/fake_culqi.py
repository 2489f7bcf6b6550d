"""A stateful Culqi on a `responses` mock: charges, refunds (listed in `operations`), retrieve.

It keeps the gateway's truth (what was charged and refunded) so a test can compare SmartPay's
books with it, and it lets a test act *during* a call: `during_refund` runs after the refund is
made at the gateway and before its answer is returned (a webhook racing the answer), and
`lose_next_answer` makes the next refund's answer vanish after it was made (a read timeout).
"""

import itertools
import json
import re
import threading
from collections.abc import Callable
from pathlib import Path

import requests
import responses

from payments.gateways import registry

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "culqi"
BASE = "https://api.culqi.test"
API = f"{BASE}/v2"


class FakeCulqi:
    def __init__(self, mock: responses.RequestsMock):
        self.mock = mock
        self.template = json.loads((FIXTURES / "charge_captured.json").read_text())
        self.charges: dict[str, dict] = {}
        self.refunds: dict[str, dict] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.during_refund: Callable[[dict], None] | None = None
        self.during_charge: Callable[[str], None] | None = None  # gets the new charge's id
        self.lose_next_answer = False
        mock.add_callback(responses.POST, f"{API}/charges", callback=self._charge)
        mock.add_callback(responses.POST, f"{API}/refunds", callback=self._refund)
        mock.add_callback(responses.GET, re.compile(rf"{API}/charges/chr_\w+"), callback=self._retrieve)

    # --- what the gateway knows
    def refunded(self, charge_id: str) -> int:
        return sum(refund["amount"] for refund in self.refunds.values() if refund["charge_id"] == charge_id)

    def refund_ids(self, charge_id: str) -> set[str]:
        return {rid for rid, refund in self.refunds.items() if refund["charge_id"] == charge_id}

    def charge_object(self, charge_id: str) -> dict:
        charge = self.charges[charge_id]
        refunded = self.refunded(charge_id)
        operations = [
            {"type": "devolución", "id": rid, "creation_date": 1715003600000, "amount": refund["amount"]}
            for rid, refund in self.refunds.items()
            if refund["charge_id"] == charge_id
        ]
        return {
            **self.template,
            "id": charge_id,
            "amount": charge["amount"],
            "current_amount": charge["amount"] - refunded,
            "amount_refunded": refunded,
            "currency_code": charge["currency"],
            "metadata": charge["metadata"],
            "operations": operations,
        }

    def dashboard_refund(self, charge_id: str, amount: int) -> str:
        """A refund made in Culqi's own dashboard: SmartPay never asked for it."""
        with self._lock:
            refund_id = f"ref_test_dash{next(self._ids):011d}"
            self.refunds[refund_id] = {"charge_id": charge_id, "amount": amount, "metadata": {}}
        return refund_id

    # --- the wire
    def _charge(self, request):
        sent = json.loads(request.body)
        with self._lock:
            charge_id = f"chr_test_{next(self._ids):016d}"
            self.charges[charge_id] = {
                "amount": sent["amount"],
                "currency": sent["currency_code"],
                "metadata": sent["metadata"],
            }
        if self.during_charge is not None:
            self.during_charge(charge_id)
        return 201, {}, json.dumps(self.charge_object(charge_id))

    def _refund(self, request):
        sent = json.loads(request.body)
        charge_id = sent["charge_id"]
        with self._lock:
            left = self.charges[charge_id]["amount"] - self.refunded(charge_id)
            if sent["amount"] > left:
                error = {"object": "error", "type": "parameter_error", "merchant_message": "monto", "param": "amount"}
                return 400, {}, json.dumps(error)
            refund_id = f"ref_test_{next(self._ids):016d}"
            refund = {"charge_id": charge_id, "amount": sent["amount"], "metadata": sent.get("metadata") or {}}
            self.refunds[refund_id] = refund
            lose = self.lose_next_answer
            self.lose_next_answer = False
        if self.during_refund is not None:
            self.during_refund({"id": refund_id, **refund})
        if lose:
            raise requests.exceptions.ReadTimeout("the answer was lost after the refund was made")
        body = {
            "object": "refund",
            "id": refund_id,
            "charge_id": charge_id,
            "amount": sent["amount"],
            "reason": "Devolución solicitada por el comercio",
            "metadata": refund["metadata"],
            "creation_date": 1715003600000,
        }
        return 201, {}, json.dumps(body)

    def _retrieve(self, request):
        charge_id = request.url.rsplit("/", 1)[1]
        if charge_id not in self.charges:
            return 404, {}, json.dumps({"object": "error", "type": "parameter_error", "merchant_message": "no"})
        return 200, {}, json.dumps(self.charge_object(charge_id))


def fake_culqi(settings):
    """Context manager: point the Culqi adapter at a FakeCulqi (one try per call)."""
    from contextlib import contextmanager

    @contextmanager
    def run():
        settings.CULQI_API_BASE = BASE
        settings.GATEWAY_RETRY_MAX_TRIES = 1
        registry._cache.clear()
        with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
            yield FakeCulqi(mock)
        registry._cache.clear()

    return run()


def culqi_refund_webhook(refund: dict, event_id: str | None = None) -> str:
    """The body of Culqi's `refund.creation.succeeded` event for a refund of the fake."""
    data = {"object": "refund", "id": refund["id"], "chargeId": refund["charge_id"], "amount": refund["amount"]}
    return json.dumps(
        {
            "object": "event",
            "id": event_id or f"evt_{refund['id']}",
            "type": "refund.creation.succeeded",
            "creation_date": 1715003600000,
            "data": json.dumps(data),
        }
    )


def culqi_charge_webhook(charge_id: str, event_id: str | None = None) -> str:
    """The body of Culqi's `charge.creation.succeeded` event for a charge of the fake."""
    data = {"object": "charge", "id": charge_id}
    return json.dumps(
        {
            "object": "event",
            "id": event_id or f"evt_{charge_id}",
            "type": "charge.creation.succeeded",
            "creation_date": 1715003600000,
            "data": json.dumps(data),
        }
    )
