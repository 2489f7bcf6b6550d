"""Invoices whose email and PSE submission could not be queued (broker down at the payment's commit)
are delivered by the billing sweep once the broker is back, exactly once however often it runs.
Redis is "down" for real here: tasks are published to a closed port (tests/broker_outage.py)."""

import logging

import pytest
from django.core import mail
from django.utils import timezone

from billing import services, tasks
from billing.models import Invoice
from tests.billing.conftest import pay
from tests.billing.test_pse import Nubefact, accepted
from tests.broker_outage import broker_down

pytestmark = pytest.mark.django_db

LATER = timezone.timedelta(minutes=11)  # past STALLED_AFTER


def test_an_invoice_never_queued_is_emailed_and_submitted_once_by_the_sweep(api, nubefact, dni_customer):
    pse = Nubefact(nubefact.mock, generar_comprobante=[accepted()])
    with broker_down():
        payment = pay(api, customer=dni_customer)  # 201: the outage never reaches the payer
    invoice = Invoice.objects.get(payment_id=payment["id"])
    assert (invoice.status, invoice.email_status, invoice.pse_attempts) == ("issued", "pending", 0)
    assert mail.outbox == [] and pse.requests == []

    assert services.billing_sweep()["emails"] == 0  # just issued: its messages may still be on their way
    later = timezone.now() + LATER
    report = services.billing_sweep(now=later)
    assert (report["submissions"], report["emails"]) == (1, 1)
    report = services.billing_sweep(now=later)
    assert (report["submissions"], report["emails"]) == (0, 0)

    invoice.refresh_from_db()
    assert (invoice.status, invoice.email_status, invoice.email_attempts) == ("accepted", "sent", 1)
    assert pse.operations() == ["generar_comprobante"]
    (message,) = mail.outbox
    assert message.to == ["facturas.ana@example.pe"] and invoice.number in message.subject

    # The original messages arriving late after all (or queued twice): no second email, no second document.
    assert tasks.email_invoice.delay(invoice.pk).get() == "sent"
    assert tasks.submit_invoice.delay(invoice.pk).get() == "accepted"
    assert len(mail.outbox) == 1 and pse.operations() == ["generar_comprobante"]


def test_a_sweep_while_the_broker_is_still_down_loses_nothing(api, nubefact, caplog):
    pse = Nubefact(nubefact.mock, generar_comprobante=[accepted()])
    caplog.set_level(logging.WARNING, logger="smartpay.queueing")
    later = timezone.now() + LATER
    with broker_down():
        first, second = pay(api, amount=5000), pay(api, amount=7000)
        caplog.clear()
        report = services.billing_sweep(now=later)  # runs to the end, queues nothing
    assert (report["submissions"], report["emails"]) == (0, 0)
    # One failed publish per kind of work, then it stops: no storm of attempts against a dead broker.
    assert sorted(record.task for record in caplog.records) == ["billing.email_invoice", "billing.submit_invoice"]
    assert mail.outbox == [] and pse.requests == []

    report = services.billing_sweep(now=later)  # the broker is back
    assert (report["submissions"], report["emails"]) == (2, 2)
    assert services.billing_sweep(now=later)["emails"] == 0
    invoices = Invoice.objects.filter(payment_id__in=[first["id"], second["id"]])
    assert {(i.status, i.email_status) for i in invoices} == {("accepted", "sent")}
    assert len(mail.outbox) == 2 and len(pse.requests) == 2
