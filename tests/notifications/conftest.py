"""Notifications fixtures: the Culqi wire, a customer, and `payer_emails` (used by the email tests)."""

import pytest

from payments.models import Customer
from tests.billing.conftest import Wire
from tests.culqi_wire import culqi_on_the_wire


@pytest.fixture
def wire(settings):
    with culqi_on_the_wire(settings, Wire) as culqi:
        yield culqi


@pytest.fixture
def customer(client_app):
    return Customer.objects.create(client_app=client_app, email="ana@example.pe", name="Ana Quispe")


@pytest.fixture
def payer_emails(settings):
    """The test settings switch payer emails off for the rest of the suite; these tests need them."""
    settings.PAYER_EMAILS_ENABLED = True
    settings.PAYER_EMAIL_MESSAGE_STREAM = "outbound"
