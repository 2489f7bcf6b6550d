"""Shared fixtures for payments tests."""

import pytest
import responses

from payments.gateways import registry

MP_BASE = "https://api.mercadopago.test"
CULQI_BASE = "https://api.culqi.test"
SECRET = "whsec-test-0123456789"


@pytest.fixture
def gateways(settings):
    settings.MERCADOPAGO_API_BASE = MP_BASE
    settings.CULQI_API_BASE = CULQI_BASE
    settings.MERCADOPAGO_WEBHOOK_SECRET = SECRET
    settings.MERCADOPAGO_WEBHOOK_TOLERANCE_SECONDS = 300
    registry._cache.clear()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock
    registry._cache.clear()
