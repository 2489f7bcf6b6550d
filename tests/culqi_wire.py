"""Culqi's charge and refund endpoints on a `responses` mock, for tests that need payments to go through."""

import itertools
import json
import time
from contextlib import contextmanager
from pathlib import Path

import responses

from payments.gateways import registry

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "culqi"
CULQI_TEST_BASE = "https://api.culqi.test"
CULQI = f"{CULQI_TEST_BASE}/v2"


class CulqiWire:
    """Answers POST /v2/charges (captured, or declined while `decline` is set) and POST /v2/refunds."""

    def __init__(self, mock):
        self.mock = mock
        self.decline = False
        self.charge = json.loads((FIXTURES / "charge_captured.json").read_text())
        self.declined = json.loads((FIXTURES / "error_card_declined.json").read_text())
        self.refund = json.loads((FIXTURES / "refund.json").read_text())
        self._numbers = itertools.count(1)  # thread-safe: concurrency tests charge from many threads
        self.delay = 0.0  # seconds the gateway takes to answer a charge

    def charges(self):
        return [call for call in self.mock.calls if call.request.url.endswith("/v2/charges")]

    def on_charge(self, request):
        sent = json.loads(request.body)
        number = next(self._numbers)
        time.sleep(self.delay)
        if self.decline:
            return 402, {}, json.dumps({**self.declined, "charge_id": f"chr_test_declined{number:08d}"})
        body = {
            **self.charge,
            "id": f"chr_test_{number:016d}",
            "amount": sent["amount"],
            "current_amount": sent["amount"],
            "currency_code": sent["currency_code"],
            "metadata": sent["metadata"],
        }
        return 201, {}, json.dumps(body)

    def on_refund(self, request):
        sent = json.loads(request.body)
        body = {**self.refund, "id": f"ref_test_{next(self._numbers):016d}", "amount": sent["amount"]}
        return 201, {}, json.dumps(body)


@contextmanager
def culqi_on_the_wire(settings, wire_class=CulqiWire):
    """Point the Culqi adapter at the mock (one try per call) and yield the wire."""
    settings.CULQI_API_BASE = CULQI_TEST_BASE
    settings.GATEWAY_RETRY_MAX_TRIES = 1
    registry._cache.clear()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        wire = wire_class(mock)
        mock.add_callback(responses.POST, f"{CULQI}/charges", callback=wire.on_charge)
        mock.add_callback(responses.POST, f"{CULQI}/refunds", callback=wire.on_refund)
        yield wire
    registry._cache.clear()
