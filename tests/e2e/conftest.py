"""End-to-end fixtures: SmartPay's adapters talk real HTTP to the gateway simulators.

The simulators run inside a live server thread; the API is called with DRF's test client in the
test thread. Both share the test database (transactional, so each side sees commits).
"""

import pytest
import requests

from payments.gateways import registry


@pytest.fixture
def sandbox(live_server, settings):
    base = live_server.url
    settings.PUBLIC_BASE_URL = base
    settings.CULQI_API_BASE = settings.CULQI_SECURE_BASE = f"{base}/sandbox/culqi"
    settings.MERCADOPAGO_API_BASE = f"{base}/sandbox/mercadopago"
    settings.SIMULATOR_DELIVER_WEBHOOKS = False
    settings.GATEWAY_READ_TIMEOUT = 5.0
    registry._cache.clear()
    yield base
    requests.delete(f"{base}/sandbox/control", timeout=5)
    registry._cache.clear()


class Tokenizer:
    """Tokenizes test cards the way a browser would, against the simulators."""

    def __init__(self, base: str, settings):
        self.base = base
        self.settings = settings

    def culqi(self, number: str = "4111111111111111", cvv: str = "123", email: str = "payer@example.com") -> str:
        response = requests.post(
            f"{self.base}/sandbox/culqi/v2/tokens",
            json={
                "card_number": number,
                "cvv": cvv,
                "expiration_month": "12",
                "expiration_year": "2030",
                "email": email,
            },
            headers={"Authorization": f"Bearer {self.settings.CULQI_PUBLIC_KEY}"},
            timeout=5,
        )
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def mercadopago(self, name: str = "APRO", number: str = "4009175332806176") -> str:
        response = requests.post(
            f"{self.base}/sandbox/mercadopago/v1/card_tokens",
            params={"public_key": self.settings.MERCADOPAGO_PUBLIC_KEY},
            json={
                "card_number": number,
                "security_code": "123",
                "expiration_month": 11,
                "expiration_year": 2030,
                "cardholder": {"name": name, "identification": {"type": "DNI", "number": "12345678"}},
            },
            timeout=5,
        )
        assert response.status_code == 201, response.text
        return response.json()["id"]


@pytest.fixture
def tokenize(sandbox, settings):
    return Tokenizer(sandbox, settings)


def set_mode(base: str, gateway: str, mode: str, **extra) -> None:
    response = requests.post(f"{base}/sandbox/control", json={"gateway": gateway, "mode": mode, **extra}, timeout=5)
    assert response.status_code == 200, response.text
