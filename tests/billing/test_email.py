"""Invoice emails: the PDF attached, after commit, once; retried only when nothing was sent."""

import base64
import json

import pytest
import requests
from anymail.exceptions import AnymailRecipientsRefused, AnymailRequestsAPIError
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.utils import timezone

from billing import services, tasks
from billing.models import Invoice
from tests.billing.conftest import pay

pytestmark = pytest.mark.django_db


def test_the_email_carries_the_pdf_and_the_xml(api, wire, dni_customer):
    payment = pay(api, amount=11800, customer=dni_customer)
    invoice = Invoice.objects.get(payment_id=payment["id"])
    (message,) = mail.outbox
    assert message.to == ["facturas.ana@example.pe"]
    assert message.subject == "Boleta de venta electrónica B001-00000001 - SMARTPAY DEMO S.A.C."
    assert "B001-00000001" in message.body and "SON: CIENTO DIECIOCHO CON 00/100 SOLES" in message.body
    assert "PEN 118.00" in message.body
    (html, mimetype) = message.alternatives[0]
    assert mimetype == "text/html" and "B001-00000001" in html
    names = [attachment[0] for attachment in message.attachments]
    assert names == ["20000000001-03-B001-00000001.pdf", "20000000001-03-B001-00000001.xml"]
    _, pdf_bytes, pdf_type = message.attachments[0]
    assert pdf_type == "application/pdf" and pdf_bytes.startswith(b"%PDF")
    assert message.attachments[1][2] == "application/xml"
    invoice.refresh_from_db()
    assert invoice.email_status == "sent" and invoice.emailed_at is not None and invoice.email_attempts == 1


def test_email_goes_out_only_after_commit(api, wire, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        api.post(
            "/api/v1/payments",
            {"amount": 500, "currency": "PEN", "email": "x@example.pe", "source": {"gateway": "culqi", "token": "t"}},
            format="json",
            HTTP_IDEMPOTENCY_KEY="after-commit",
        )
    assert Invoice.objects.count() == 1
    assert mail.outbox == []  # nothing before the commit
    for callback in callbacks:
        callback()
    assert len(mail.outbox) == 1


def test_never_twice_for_the_same_invoice(api, wire):
    invoice = Invoice.objects.get(payment_id=pay(api)["id"])
    assert len(mail.outbox) == 1
    assert tasks.email_invoice.delay(invoice.pk).get() == "sent"
    assert services.invoice_email_send(invoice_id=invoice.pk) == "sent"
    services.billing_sweep(now=timezone.now() + timezone.timedelta(hours=1))
    assert len(mail.outbox) == 1


def test_a_claimed_email_is_not_sent_by_another_worker(api, wire, monkeypatch):
    invoice = Invoice.objects.get(payment_id=pay(api)["id"])
    Invoice.objects.filter(pk=invoice.pk).update(email_status="pending")
    mail.outbox.clear()
    # Another worker claims it between this worker's read and its claim.
    original = services._email_message

    def claim_first(invoice, *, to):
        message = original(invoice, to=to)
        Invoice.objects.filter(pk=invoice.pk).update(email_status="sending")
        return message

    monkeypatch.setattr(services, "_email_message", claim_first)
    assert services.invoice_email_send(invoice_id=invoice.pk) == "sending"
    assert mail.outbox == []


class FlakyBackend(LocmemBackend):
    """Fails the first `failures` sends with `error`, then delivers to the locmem outbox."""

    failures = 0
    error = None
    calls = 0

    def send_messages(self, messages):
        type(self).calls += 1
        if type(self).calls <= type(self).failures:
            raise type(self).error
        return super().send_messages(messages)


@pytest.fixture
def flaky(settings, eager_retries):
    settings.EMAIL_BACKEND = "tests.billing.test_email.FlakyBackend"
    FlakyBackend.calls = 0
    return FlakyBackend


def test_a_provider_error_answer_is_retried_then_sent_once(api, wire, flaky):
    flaky.failures, flaky.error = 2, AnymailRequestsAPIError("Postmark is down", status_code=503)
    invoice = Invoice.objects.get(payment_id=pay(api)["id"])
    invoice.refresh_from_db()
    assert invoice.email_status == "sent"
    assert invoice.email_attempts == 3 and flaky.calls == 3
    assert len(mail.outbox) == 1


def test_no_connection_is_retried(api, wire, flaky):
    cause = requests.ConnectTimeout("connect timeout")
    error = type("AnymailRequestsAPIError", (AnymailRequestsAPIError, requests.ConnectTimeout), {})("no connection")
    error.__cause__ = cause
    flaky.failures, flaky.error = 1, error
    invoice = Invoice.objects.get(payment_id=pay(api)["id"])
    invoice.refresh_from_db()
    assert (invoice.email_status, invoice.email_attempts, len(mail.outbox)) == ("sent", 2, 1)


def test_a_timeout_after_sending_is_unknown_and_never_resent_automatically(api, wire, flaky):
    error = type("AnymailRequestsAPIError", (AnymailRequestsAPIError, requests.ReadTimeout), {})("read timeout")
    error.__cause__ = requests.ReadTimeout("read timeout")
    flaky.failures, flaky.error = 1, error
    invoice = Invoice.objects.get(payment_id=pay(api)["id"])
    invoice.refresh_from_db()
    assert invoice.email_status == "unknown" and invoice.email_attempts == 1
    services.billing_sweep(now=timezone.now() + timezone.timedelta(hours=1))
    assert services.invoice_email_send(invoice_id=invoice.pk) == "unknown"
    assert flaky.calls == 1 and mail.outbox == []


def test_a_refused_address_fails_without_retry(api, wire, flaky):
    flaky.failures, flaky.error = 5, AnymailRecipientsRefused("inactive recipient")
    invoice = Invoice.objects.get(payment_id=pay(api)["id"])
    invoice.refresh_from_db()
    assert (invoice.email_status, flaky.calls) == ("failed", 1)


def test_out_of_retries_leaves_it_failed(api, wire, flaky):
    flaky.failures, flaky.error = 100, AnymailRequestsAPIError("Postmark is down", status_code=500)
    invoice = Invoice.objects.get(payment_id=pay(api)["id"])
    invoice.refresh_from_db()
    assert flaky.calls == tasks.email_invoice.max_retries + 1
    # Eager (no broker): the last try leaves it for the sweep rather than giving up in the request.
    assert invoice.email_status == "retrying"


def test_a_stuck_claim_becomes_unknown(api, wire):
    invoice = Invoice.objects.get(payment_id=pay(api)["id"])
    Invoice.objects.filter(pk=invoice.pk).update(
        email_status="sending", email_claimed_at=timezone.now() - timezone.timedelta(hours=1)
    )
    assert services.billing_sweep()["emails_unknown"] == 1
    assert Invoice.objects.get(pk=invoice.pk).email_status == "unknown"


def test_anymail_sees_the_postmark_stream_tag_and_metadata(api, wire, settings):
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    settings.PAYER_EMAIL_MESSAGE_STREAM = "invoices"  # the payer emails' stream
    invoice = Invoice.objects.get(payment_id=pay(api)["id"])
    (message,) = mail.outbox
    params = message.anymail_test_params
    assert params["MessageStream"] == "invoices"  # esp_extra is merged into the ESP's params
    assert params["tags"] == ["invoice"]
    assert params["metadata"] == {"invoice_id": invoice.pk, "client_app": invoice.client_app_id}
    assert params["attachments"][0].name.endswith(".pdf")
    invoice.refresh_from_db()
    assert invoice.email_status == "sent"


def test_no_address_no_email(client_app, django_capture_on_commit_callbacks):
    from django.db import transaction

    from payments.models import Payment

    payment = Payment.objects.create(
        client_app=client_app, amount=500, amount_captured=500, currency="PEN", status="succeeded"
    )
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        invoice = services.invoice_issue(payment=payment)
    assert invoice.email_status == "skipped" and mail.outbox == []


def test_through_postmark_the_message_has_the_stream_and_the_pdf(api, wire, settings):
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "server-token-test"}
    settings.PAYER_EMAIL_MESSAGE_STREAM = "outbound"
    wire.mock.post(
        "https://api.postmarkapp.com/email",
        json={
            "To": "payer@example.pe",
            "SubmittedAt": "2026-11-26T10:00:00.0000000-05:00",
            "MessageID": "b7bc2f4a-e38e-4336-af7d-e6c392c2f817",
            "ErrorCode": 0,
            "Message": "OK",
        },
    )
    invoice = Invoice.objects.get(payment_id=pay(api)["id"])
    (call,) = [c for c in wire.mock.calls if c.request.url == "https://api.postmarkapp.com/email"]
    sent = json.loads(call.request.body)
    assert call.request.headers["X-Postmark-Server-Token"] == "server-token-test"
    assert sent["To"] == "payer@example.pe" and sent["MessageStream"] == "outbound"
    assert sent["Tag"] == "invoice" and sent["Metadata"]["invoice_id"] == invoice.pk
    pdf = sent["Attachments"][0]
    assert (pdf["Name"], pdf["ContentType"]) == ("20000000001-03-B001-00000001.pdf", "application/pdf")
    assert base64.b64decode(pdf["Content"]).startswith(b"%PDF")
    invoice.refresh_from_db()
    assert invoice.email_status == "sent"
    assert invoice.email_message_id == "b7bc2f4a-e38e-4336-af7d-e6c392c2f817"


def test_postmark_5xx_is_retried_and_sent_once(api, wire, settings, eager_retries):
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "server-token-test"}
    ok = {
        "To": "payer@example.pe",
        "MessageID": "0f2d7c1e-1111-2222-3333-444455556666",
        "ErrorCode": 0,
        "Message": "OK",
    }
    wire.mock.post("https://api.postmarkapp.com/email", status=503, body="Service Unavailable")
    wire.mock.post("https://api.postmarkapp.com/email", json=ok)
    invoice = Invoice.objects.get(payment_id=pay(api)["id"])
    invoice.refresh_from_db()
    calls = [c for c in wire.mock.calls if c.request.url == "https://api.postmarkapp.com/email"]
    assert len(calls) == 2
    assert (invoice.email_status, invoice.email_attempts) == ("sent", 2)
