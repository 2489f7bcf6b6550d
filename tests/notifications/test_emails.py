"""Emails to payers: receipts and credits notices from outbox events, at most once, in the payer's
language, retried on Postmark 5xx, and never to an address Postmark reported bouncing."""

import base64
import json
from datetime import timedelta
from unittest import mock

import pytest
from anymail.exceptions import AnymailAPIError
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.test import TestCase
from django.utils import timezone

from notifications import email_tasks
from notifications.emails import card_of, emails_sweep
from notifications.models import CustomerPreferences, SentEmail, SuppressedAddress
from notifications.services import event_record
from payments.models import Customer, Payment, PaymentAttempt
from tests.billing.conftest import pay

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("payer_emails")]

TRACKING = "/anymail/postmark/tracking/"


def of_kind(kind: str) -> list:
    return [message for message in mail.outbox if getattr(message, "tags", None) == [kind]]


def later(minutes: int):
    return timezone.now() + timedelta(minutes=minutes)


# --- Receipts ----------------------------------------------------------------------------------------


def test_a_payment_succeeded_emails_one_receipt_in_spanish_with_html_and_text(api, wire):
    payment = pay(api, amount=2500, email="Payer@Example.pe", description="Plan Pro")
    (message,) = of_kind("payment_receipt")
    assert message.to == ["payer@example.pe"]
    assert message.subject == "Recibo de tu pago de S/ 25.00"
    assert "Monto: S/ 25.00" in message.body and "Concepto: Plan Pro" in message.body
    assert payment["id"] in message.body and payment["gateway_payment_id"] in message.body
    email = SentEmail.objects.get(kind="payment_receipt")
    lima = timezone.localtime(email.created_at, timezone.get_fixed_timezone(-300)).strftime("%Y-%m-%d %H:%M")
    assert f"Fecha y hora (Lima): {lima}" in message.body
    (html, mimetype) = message.alternatives[0]
    assert mimetype == "text/html" and "S/ 25.00" in html and lima in html and '<html lang="es">' in html
    assert message.esp_extra == {"MessageStream": "outbound"}
    assert message.metadata == {"sent_email": email.pk, "kind": "payment_receipt"}
    assert (email.status, email.attempts, email.subject_key) == ("sent", 1, payment["id"])
    assert email.sent_at is not None


def test_english_when_preferred_and_the_extra_billing_email_gets_a_copy(api, wire, customer):
    CustomerPreferences.objects.create(customer=customer, language="en", extra_billing_email="books@acme.pe")
    pay(api, amount=123456, customer=customer, email="ana@example.pe")
    receipts = of_kind("payment_receipt")
    assert sorted(m.to[0] for m in receipts) == ["ana@example.pe", "books@acme.pe"]
    for message in receipts:
        assert message.subject == "Receipt for your payment of S/ 1,234.56"
        assert "Date and time (Lima):" in message.body and "Ana Quispe" in message.body
        assert '<html lang="en">' in message.alternatives[0][0]


def test_the_task_and_the_sweep_run_again_send_nothing_more(api, wire):
    pay(api, amount=2500)
    email = SentEmail.objects.get(kind="payment_receipt")
    assert email_tasks.send_payer_email.delay(email.pk).get() == "sent"
    assert emails_sweep(now=later(60)) == {"queued": 0, "stuck": 0}
    assert email_tasks.sweep_payer_emails.delay().get() == {"queued": 0, "stuck": 0}
    assert len(of_kind("payment_receipt")) == 1
    assert SentEmail.objects.get(pk=email.pk).attempts == 1


def test_recording_the_same_event_twice_is_one_email(api, wire, client_app):
    payment = pay(api, amount=2500)
    event = event_record(
        client_app=client_app, type="payment.succeeded", data={"id": payment["id"]}, object_id=payment["id"]
    )
    assert event is not None
    assert SentEmail.objects.filter(kind="payment_receipt").count() == 1  # (kind, subject, recipient) is unique
    assert len(of_kind("payment_receipt")) == 1


def test_a_lost_task_is_sent_by_the_sweep_once(api, wire):
    with mock.patch("notifications.emails.enqueue_after_commit"):  # the broker refused it
        pay(api, amount=2500)
    email = SentEmail.objects.get(kind="payment_receipt")
    assert email.status == "pending" and of_kind("payment_receipt") == []
    assert emails_sweep()["queued"] == 0  # not a minute old yet: its task may still be on its way
    assert emails_sweep(now=later(2))["queued"] == 1
    assert emails_sweep(now=later(2))["queued"] == 0
    assert len(of_kind("payment_receipt")) == 1


def test_a_postmark_5xx_is_retried_then_sent_once(api, wire):
    calls = {"n": 0}
    real_send = LocmemBackend.send_messages

    def flaky(self, messages):
        if messages[0].tags == ["payment_receipt"]:
            calls["n"] += 1
        if calls["n"] == 1 and messages[0].tags == ["payment_receipt"]:
            raise AnymailAPIError("Postmark API response 503", status_code=503)
        return real_send(self, messages)

    with mock.patch.object(LocmemBackend, "send_messages", flaky):
        pay(api, amount=2500)
        email = SentEmail.objects.get(kind="payment_receipt")
        assert (email.status, email.attempts, email.last_error) == ("pending", 1, "HTTP 503")
        assert emails_sweep(now=later(2))["queued"] == 0  # its second try is due 5 minutes after
        assert emails_sweep(now=later(6))["queued"] == 1
        assert emails_sweep(now=later(6))["queued"] == 0
    assert len(of_kind("payment_receipt")) == 1
    email.refresh_from_db()
    assert (email.status, email.attempts, email.last_error) == ("sent", 2, "")


def test_postmark_down_for_every_try_ends_failed(api, wire):
    with mock.patch.object(LocmemBackend, "send_messages", side_effect=AnymailAPIError("down", status_code=503)):
        pay(api, amount=2500)
        for minutes in (2, 6, 16, 46, 121, 300):
            emails_sweep(now=later(minutes))
    email = SentEmail.objects.get(kind="payment_receipt")
    assert (email.status, email.attempts) == ("failed", 5)
    assert "after 5 tries" in email.last_error
    assert of_kind("payment_receipt") == []


def test_a_worker_that_retries_uses_celery_retry_with_backoff(api, wire):
    with mock.patch("notifications.emails.enqueue_after_commit"):
        pay(api, amount=2500)
    email = SentEmail.objects.get(kind="payment_receipt")
    task = email_tasks.send_payer_email
    with (
        mock.patch.object(LocmemBackend, "send_messages", side_effect=AnymailAPIError("x", status_code=500)),
        mock.patch.object(task, "retry", side_effect=RuntimeError("retry asked")) as retry,
    ):
        task.push_request(retries=0, is_eager=False)
        try:
            with pytest.raises(RuntimeError, match="retry asked"):
                task.run(email.pk)
        finally:
            task.pop_request()
    assert 1 <= retry.call_args.kwargs["countdown"] <= 60
    assert SentEmail.objects.get(pk=email.pk).status == "pending"


def test_card_brand_and_last4_from_the_gateway_answer(api, wire):
    payment = Payment.objects.get(pk=pay(api, amount=2500)["id"])
    assert card_of(payment) == ("Visa", "1111")  # Culqi's charge: source.iin.card_brand, source.card_number
    assert "Tarjeta: Visa •••• 1111" in of_kind("payment_receipt")[0].body
    PaymentAttempt.objects.filter(payment=payment).update(
        raw_response={"payment_method_id": "master", "card": {"last_four_digits": "4242"}}  # Mercado Pago's
    )
    assert card_of(payment) == ("master", "4242")
    PaymentAttempt.objects.filter(payment=payment).update(raw_response=None)
    assert card_of(payment) == ("", "")


# --- Bounces and complaints ----------------------------------------------------------------------


def bounce(address: str, type_: str = "HardBounce") -> dict:
    """A Postmark bounce webhook body (https://postmarkapp.com/developer/webhooks/bounce-webhook)."""
    return {
        "RecordType": "Bounce",
        "MessageStream": "outbound",
        "ID": 4323372036854775807,
        "Type": type_,
        "TypeCode": 1,
        "Name": "Hard bounce",
        "Tag": "payment_receipt",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Metadata": {"kind": "payment_receipt"},
        "ServerID": 23,
        "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": address,
        "From": "no-reply@smartpay.local",
        "BouncedAt": "2026-03-14T14:05:00Z",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": True,
        "Subject": "Recibo de tu pago de S/ 25.00",
    }


def post_tracking(client, body: dict, credentials: str):
    auth = base64.b64encode(credentials.encode()).decode()
    return client.post(
        TRACKING, data=json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Basic {auth}"
    )


@pytest.fixture
def webhook_secret(settings):
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": "postmark:s3cret-webhook"}


def test_a_hard_bounce_suppresses_the_address_and_the_next_email_is_not_sent(client, api, wire, webhook_secret):
    assert post_tracking(client, bounce("Payer@Example.pe"), "postmark:wrong").status_code == 400
    assert not SuppressedAddress.objects.exists()

    assert post_tracking(client, bounce("Payer@Example.pe"), "postmark:s3cret-webhook").status_code == 200
    suppressed = SuppressedAddress.objects.get()
    assert (suppressed.address, suppressed.reason) == ("payer@example.pe", "bounced")
    from notifications.models import Alert

    assert Alert.objects.get(kind="email_bouncing").dedupe_key == "payer@example.pe"

    pay(api, amount=2500, email="payer@example.pe")
    assert of_kind("payment_receipt") == []
    assert SentEmail.objects.get(kind="payment_receipt").status == "suppressed"

    SuppressedAddress.objects.all().delete()  # staff lift it: the next one goes out
    pay(api, amount=2600, email="payer@example.pe")
    assert len(of_kind("payment_receipt")) == 1


def test_a_complaint_suppresses_but_a_soft_bounce_does_not(client, webhook_secret):
    complaint = {**bounce("a@example.pe", "SpamComplaint"), "RecordType": "SpamComplaint"}
    assert post_tracking(client, complaint, "postmark:s3cret-webhook").status_code == 200
    assert post_tracking(client, bounce("b@example.pe", "SoftBounce"), "postmark:s3cret-webhook").status_code == 200
    assert dict(SuppressedAddress.objects.values_list("address", "reason")) == {"a@example.pe": "complained"}


def test_without_a_webhook_secret_the_tracking_url_refuses_everything(client, settings):
    settings.ANYMAIL = {}
    assert post_tracking(client, bounce("c@example.pe"), "postmark:anything").status_code == 400
    assert not SuppressedAddress.objects.exists()


# --- Alerts (credits) ----------------------------------------------------------------------------


def record_low_balance(client_app, customer_):
    with TestCase.captureOnCommitCallbacks(execute=True):
        event_record(
            client_app=client_app,
            type="credits.low_balance",
            data={"customer": customer_.pk, "available": 3, "threshold": 10},
            dedupe_key=f"low-{customer_.pk}",
        )


def test_low_balance_is_emailed_unless_alerts_are_off_while_receipts_still_go(client_app, customer, api, wire):
    record_low_balance(client_app, customer)
    (message,) = of_kind("credits_low_balance")
    assert message.to == ["ana@example.pe"] and "3" in message.subject and message.alternatives

    quiet = Customer.objects.create(client_app=client_app, email="quiet@example.pe")
    CustomerPreferences.objects.create(customer=quiet, email_alerts=False)
    record_low_balance(client_app, quiet)
    assert not SentEmail.objects.filter(recipient="quiet@example.pe").exists()
    pay(api, amount=2500, customer=quiet, email="quiet@example.pe")
    assert [m.to for m in of_kind("payment_receipt")] == [["quiet@example.pe"]]


def test_another_apps_customer_is_never_emailed_from_this_apps_event(client_app, other_api):
    theirs = Customer.objects.create(client_app=other_api.client_app, email="theirs@example.pe")
    record_low_balance(client_app, theirs)
    assert not SentEmail.objects.exists() and mail.outbox == []


def test_auto_renewal_failed_says_what_to_do_in_english(client_app, customer):
    CustomerPreferences.objects.create(customer=customer, language="en")
    with TestCase.captureOnCommitCallbacks(execute=True):
        event_record(
            client_app=client_app,
            type="auto_renewal.failed",
            data={"customer": customer.pk, "plan": "pro-100", "reason": "card_declined", "disabled": True},
            dedupe_key="ar-1",
        )
    (message,) = of_kind("auto_renewal_failed")
    assert "What to do" in message.body and "pro-100" in message.body and "turned off" in message.body


def test_turned_off_no_email_is_recorded(api, wire, settings):
    settings.PAYER_EMAILS_ENABLED = False
    pay(api, amount=2500)
    assert not SentEmail.objects.exists()


def _no_answer(cause: BaseException) -> AnymailAPIError:
    """Anymail's error for a request that got no HTTP answer, raised from the transport's error."""
    try:
        raise cause
    except BaseException as transport:
        try:
            raise AnymailAPIError(f"no answer: {transport}") from transport
        except AnymailAPIError as error:
            return error


def test_an_answer_lost_after_sending_is_never_sent_again(api, wire):
    import requests

    lost = _no_answer(requests.ReadTimeout("read timed out"))
    real_send = LocmemBackend.send_messages
    receipts = []

    def answer_lost(self, messages):
        if messages[0].tags == ["payment_receipt"]:
            receipts.append(1)
            raise lost
        return real_send(self, messages)

    with mock.patch.object(LocmemBackend, "send_messages", answer_lost):
        pay(api, amount=2500)
        for minutes in (2, 6, 16, 46):
            emails_sweep(now=later(minutes))
    email = SentEmail.objects.get(kind="payment_receipt")
    assert (email.status, email.attempts, len(receipts)) == ("failed", 1, 1)  # may have been sent: once
    assert "may have been sent" in email.last_error


def test_no_connection_to_postmark_is_retried_and_sent_once(api, wire):
    import requests

    refused = _no_answer(requests.ConnectTimeout("connect timed out"))
    real_send = LocmemBackend.send_messages
    calls = []

    def flaky(self, messages):
        if messages[0].tags == ["payment_receipt"]:
            calls.append(1)
            if len(calls) == 1:
                raise refused
        return real_send(self, messages)

    with mock.patch.object(LocmemBackend, "send_messages", flaky):
        pay(api, amount=2500)
        emails_sweep(now=later(2))
        emails_sweep(now=later(6))
    email = SentEmail.objects.get(kind="payment_receipt")
    assert (email.status, email.attempts) == ("sent", 2)
    assert len(of_kind("payment_receipt")) == 1
