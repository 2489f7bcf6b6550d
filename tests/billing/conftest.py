"""Billing fixtures: the Culqi wire (charges, refunds, charge lookups) and Nubefact mocked with
`responses`, customers with billing profiles, a throw-away signing certificate, and helpers that
make a payment succeed through the public API."""

import datetime
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from django.test import TestCase

from billing import services, tasks
from payments.models import Customer
from tests.culqi_wire import CulqiWire, culqi_on_the_wire

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CULQI = "https://api.culqi.test/v2"
NUBEFACT_URL = "https://api.nubefact.test/api/v1/6f5b1d2e-0c4a-4f3e-9a77-2b8c1d0e9f31"
NUBEFACT_TOKEN = "nubefact-test-token-0123456789"


@pytest.fixture
def eager_retries(monkeypatch):
    """Let eager tasks retry as a worker would (immediately, with the retry count growing)."""
    from smartpay.celery import app

    monkeypatch.setattr(tasks, "RETRY_WHEN_EAGER", True)
    propagates = app.conf.task_eager_propagates
    app.conf.task_eager_propagates = False
    yield
    app.conf.task_eager_propagates = propagates


def fixture_json(name: str) -> dict:
    return json.loads((FIXTURES / "billing" / name).read_text())


class Wire(CulqiWire):
    """Culqi's charges/refunds (always captured/succeeded) on one `responses` mock, which tests also
    use for Nubefact."""

    def nubefact_calls(self) -> list[dict]:
        return [json.loads(call.request.body) for call in self.mock.calls if call.request.url == NUBEFACT_URL]


@pytest.fixture
def wire(settings):
    with culqi_on_the_wire(settings, Wire) as culqi:
        yield culqi


@pytest.fixture
def nubefact(settings, wire):
    """Nubefact configured as the PSE; tests add its answers to `wire.mock`."""
    settings.BILLING_PSE = "nubefact"
    settings.NUBEFACT_API_URL = NUBEFACT_URL
    settings.NUBEFACT_API_TOKEN = NUBEFACT_TOKEN
    return wire


@pytest.fixture
def customer(client_app):
    return Customer.objects.create(client_app=client_app, email="ana@example.pe", name="Ana Quispe")


@pytest.fixture
def dni_customer(customer):
    services.billing_profile_set(
        customer=customer,
        document_type="DNI",
        document_number="45678912",
        legal_name="ANA QUISPE MAMANI",
        address="JR. LAMPA 456, LIMA",
        invoice_email="facturas.ana@example.pe",
    )
    return customer


@pytest.fixture
def ruc_customer(client_app):
    customer = Customer.objects.create(client_app=client_app, email="pagos@andina.example.pe", name="Andina")
    services.billing_profile_set(
        customer=customer,
        document_type="RUC",
        document_number="20131312955",
        legal_name="DISTRIBUIDORA ANDINA S.A.C.",
        address="AV. ARGENTINA 2020, CALLAO",
        preferred_document="factura",
    )
    return customer


def pay(
    api, *, amount=11800, currency="PEN", customer=None, email="payer@example.pe", description="Plan Pro", key=None
):
    """A Culqi card payment through the API, with after-commit work run as a real commit would."""
    body = {
        "amount": amount,
        "currency": currency,
        "email": email,
        "description": description,
        "source": {"gateway": "culqi", "token": "tkn_test_visa"},
    }
    if customer is not None:
        body["customer"] = customer.pk
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = api.post(
            "/api/v1/payments", body, format="json", HTTP_IDEMPOTENCY_KEY=key or f"pay-{amount}-{id(body)}"
        )
    assert response.status_code == 201, response.json()
    assert response.json()["status"] == "succeeded", response.json()
    return response.json()


def refund(api, payment_id: str, *, amount=None, reason="", key=None):
    body = {"reason": reason} if amount is None else {"amount": amount, "reason": reason}
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = api.post(
            f"/api/v1/payments/{payment_id}/refunds",
            body,
            format="json",
            HTTP_IDEMPOTENCY_KEY=key or f"refund-{payment_id}-{amount}-{reason}",
        )
    assert response.status_code in (200, 201), response.json()
    assert response.json()["status"] == "succeeded", response.json()
    return response.json()


@pytest.fixture
def certificate(tmp_path, settings):
    """A throw-away RSA key and self-signed certificate, configured as the signing material."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "PE"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SMARTPAY DEMO S.A.C."),
            x509.NameAttribute(NameOID.COMMON_NAME, "20000000001"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_file, cert_file = tmp_path / "key.pem", tmp_path / "cert.pem"
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    settings.BILLING_SIGNING_KEY_FILE = str(key_file)
    settings.BILLING_SIGNING_CERT_FILE = str(cert_file)
    return cert_file.read_bytes()
