"""Submission to SUNAT through Nubefact's JSON API, with Nubefact mocked on the wire (`responses`)."""

import json

import pytest
import requests
import responses
from django.utils import timezone

from billing import services
from billing.models import Invoice
from billing.pse.base import ACCEPTED, PENDING, REJECTED, PseConfigurationError, PseRejected, PseTransientError
from billing.pse.nubefact import NubefactSender
from tests.billing.conftest import NUBEFACT_TOKEN, NUBEFACT_URL, fixture_json, pay, refund

pytestmark = pytest.mark.django_db


class Nubefact:
    """Answers per `operacion`, in order (the last answer repeats). An answer is (status, body) or
    an exception to raise (a timeout)."""

    def __init__(self, mock, **answers):
        self.answers = {operation: list(replies) for operation, replies in answers.items()}
        self.requests = []
        mock.add_callback(responses.POST, NUBEFACT_URL, callback=self)

    def __call__(self, request):
        body = json.loads(request.body)
        self.requests.append((request.headers, body))
        replies = self.answers[body["operacion"]]
        answer = replies.pop(0) if len(replies) > 1 else replies[0]
        if isinstance(answer, Exception):
            raise answer
        status, payload = answer
        return status, {}, payload if isinstance(payload, str) else json.dumps(payload)

    def operations(self):
        return [body["operacion"] for _, body in self.requests]


def accepted(**overrides):
    return 200, {**fixture_json("nubefact_accepted.json"), **overrides}


def test_factura_accepted_by_sunat(api, nubefact, ruc_customer):
    pse = Nubefact(nubefact.mock, generar_comprobante=[accepted(tipo_de_comprobante=1, serie="F001")])
    payment = pay(api, amount=11800, customer=ruc_customer)
    invoice = Invoice.objects.get(payment_id=payment["id"])
    assert invoice.status == "accepted"
    assert (invoice.sunat_response_code, invoice.sunat_description) == (
        "0",
        "La Boleta numero B001-1, ha sido aceptada",
    )
    assert invoice.pse == "nubefact" and invoice.pse_attempts == 1
    assert invoice.pse_response["enlace_del_cdr"].endswith(".cdr")
    ((headers, body),) = pse.requests
    assert headers["Authorization"] == f'Token token="{NUBEFACT_TOKEN}"'
    assert headers["Content-Type"] == "application/json"
    assert body["operacion"] == "generar_comprobante"
    assert (body["tipo_de_comprobante"], body["serie"], body["numero"]) == (1, "F001", 1)
    assert (body["cliente_tipo_de_documento"], body["cliente_numero_de_documento"]) == ("6", "20131312955")
    assert body["cliente_denominacion"] == "DISTRIBUIDORA ANDINA S.A.C."
    assert body["fecha_de_emision"] == invoice.issue_date.strftime("%d-%m-%Y")
    assert (body["moneda"], body["porcentaje_de_igv"]) == (1, "18.00")
    assert (body["total_gravada"], body["total_igv"], body["total"]) == ("100.00", "18.00", "118.00")
    assert body["enviar_automaticamente_a_la_sunat"] is True and body["enviar_automaticamente_al_cliente"] is False
    (item,) = body["items"]
    assert (item["unidad_de_medida"], item["cantidad"], item["tipo_de_igv"]) == ("ZZ", "1", 1)
    assert (item["valor_unitario"], item["precio_unitario"], item["subtotal"], item["igv"], item["total"]) == (
        "100.00",
        "118.00",
        "100.00",
        "18.00",
        "118.00",
    )


def test_boleta_waits_for_sunat_then_the_sweep_reads_the_verdict(api, nubefact):
    pse = Nubefact(
        nubefact.mock,
        generar_comprobante=[(200, fixture_json("nubefact_pending.json"))],
        consultar_comprobante=[accepted()],
    )
    invoice = Invoice.objects.get(payment_id=pay(api)["id"])
    assert invoice.status == "submitted" and invoice.sunat_response_code == ""
    assert pse.requests[0][1]["cliente_tipo_de_documento"] == "-"
    report = services.billing_sweep(now=timezone.now() + timezone.timedelta(minutes=20))
    assert report["submissions"] == 1
    invoice.refresh_from_db()
    assert invoice.status == "accepted" and invoice.pse_attempts == 2
    assert pse.operations() == ["generar_comprobante", "consultar_comprobante"]
    assert pse.requests[1][1] == {
        "operacion": "consultar_comprobante",
        "tipo_de_comprobante": 2,
        "serie": "B001",
        "numero": 1,
    }


def test_rejected_by_sunat_with_its_reason(api, nubefact, ruc_customer):
    Nubefact(nubefact.mock, generar_comprobante=[(200, fixture_json("nubefact_rejected_by_sunat.json"))])
    invoice = Invoice.objects.get(payment_id=pay(api, customer=ruc_customer)["id"])
    assert invoice.status == "rejected"
    assert (invoice.sunat_response_code, invoice.sunat_description) == (
        "2017",
        "El numero de RUC del receptor no existe.",
    )
    # Final: the sweep leaves it alone.
    assert services.billing_sweep(now=timezone.now() + timezone.timedelta(hours=1))["submissions"] == 0


def test_rejected_by_the_pse_with_its_reason(api, nubefact):
    Nubefact(nubefact.mock, generar_comprobante=[(400, fixture_json("nubefact_error_format.json"))])
    invoice = Invoice.objects.get(payment_id=pay(api)["id"])
    assert invoice.status == "rejected"
    assert (invoice.sunat_response_code, invoice.sunat_description) == (
        "20",
        "El archivo enviado no cumple con el formato establecido",
    )
    assert invoice.pse_response == fixture_json("nubefact_error_format.json")


def test_timeout_then_retry_reads_the_document_instead_of_sending_it_twice(api, nubefact, eager_retries):
    pse = Nubefact(
        nubefact.mock,
        generar_comprobante=[requests.ReadTimeout("read timed out"), (400, fixture_json("nubefact_error_exists.json"))],
        consultar_comprobante=[accepted()],
    )
    invoice = Invoice.objects.get(payment_id=pay(api)["id"])
    assert pse.operations() == ["generar_comprobante", "generar_comprobante", "consultar_comprobante"]
    assert invoice.status == "accepted" and invoice.pse_attempts == 2 and invoice.pse_error == ""


def test_timeout_then_retry_submits_when_the_first_never_arrived(api, nubefact, eager_retries):
    pse = Nubefact(nubefact.mock, generar_comprobante=[requests.ConnectTimeout("no route"), accepted()])
    invoice = Invoice.objects.get(payment_id=pay(api)["id"])
    assert pse.operations() == ["generar_comprobante", "generar_comprobante"]
    assert invoice.status == "accepted"


def test_without_a_broker_a_timeout_waits_for_the_sweep(api, nubefact):
    pse = Nubefact(nubefact.mock, generar_comprobante=[requests.ReadTimeout("read timed out"), accepted()])
    invoice = Invoice.objects.get(payment_id=pay(api)["id"])
    assert invoice.status == "issued" and "did not answer in time" in invoice.pse_error
    assert services.billing_sweep()["submissions"] == 0  # not stalled yet
    services.billing_sweep(now=timezone.now() + timezone.timedelta(minutes=11))
    invoice.refresh_from_db()
    assert invoice.status == "accepted" and pse.operations() == ["generar_comprobante"] * 2


def test_server_errors_are_retried(api, nubefact, eager_retries):
    pse = Nubefact(
        nubefact.mock,
        generar_comprobante=[(502, "<html>Bad gateway</html>"), (500, {"errors": "x", "codigo": 40}), accepted()],
    )
    invoice = Invoice.objects.get(payment_id=pay(api)["id"])
    assert invoice.status == "accepted" and len(pse.requests) == 3


def test_bad_credentials_are_retried_and_then_left_for_later(api, nubefact, eager_retries):
    Nubefact(nubefact.mock, generar_comprobante=[(401, fixture_json("nubefact_error_token.json"))])
    invoice = Invoice.objects.get(payment_id=pay(api)["id"])
    assert invoice.status == "issued"
    assert invoice.pse_error == "No se pudo autenticar, token incorrecto o eliminado"
    assert invoice.pse_attempts == 7  # the first try and six retries


def test_a_credit_note_refers_to_its_invoice_with_nubefact_codes(api, nubefact, dni_customer):
    pse = Nubefact(nubefact.mock, generar_comprobante=[accepted()])
    payment = pay(api, amount=11800, customer=dni_customer)
    refund(api, payment["id"])
    note = Invoice.objects.get(document_type="credit_note")
    assert note.status == "accepted"
    body = pse.requests[-1][1]
    assert (body["tipo_de_comprobante"], body["serie"], body["numero"]) == (3, "BC01", 1)
    assert body["documento_que_se_modifica_tipo"] == 2
    assert (body["documento_que_se_modifica_serie"], body["documento_que_se_modifica_numero"]) == ("B001", 1)
    assert body["tipo_de_nota_de_credito"] == 1
    assert (body["cliente_tipo_de_documento"], body["cliente_numero_de_documento"]) == ("1", "45678912")


def test_a_credit_note_waits_until_its_invoice_reached_the_pse(api, nubefact):
    Nubefact(nubefact.mock, generar_comprobante=[requests.ReadTimeout("t"), accepted()])
    payment = pay(api)
    refund(api, payment["id"])
    invoice, note = Invoice.objects.order_by("document_type")  # boleta, credit_note
    assert (invoice.status, note.status) == ("issued", "issued")
    assert "has not reached the PSE yet" in note.pse_error
    later = timezone.now() + timezone.timedelta(minutes=11)
    services.billing_sweep(now=later)
    services.billing_sweep(now=later)
    assert set(Invoice.objects.values_list("status", flat=True)) == {"accepted"}


def test_without_a_pse_nothing_is_submitted(api, wire, settings):
    settings.BILLING_PSE = ""
    invoice = Invoice.objects.get(payment_id=pay(api)["id"])
    assert invoice.status == "issued" and invoice.pse_attempts == 0
    assert services.invoice_submit(invoice_id=invoice.pk).status == "issued"
    assert wire.nubefact_calls() == []


# --- The sender alone ---------------------------------------------------------------------------


def sender():
    return NubefactSender(url=NUBEFACT_URL, token=NUBEFACT_TOKEN, usd_exchange_rate="3.750")


@pytest.fixture
def document(api, wire):
    invoice = Invoice.objects.get(payment_id=pay(api, currency="USD")["id"])
    return services.pse_document(invoice)


def test_sender_maps_answers(document):
    with responses.RequestsMock() as mock:
        mock.post(NUBEFACT_URL, json=fixture_json("nubefact_accepted.json"))
        mock.post(NUBEFACT_URL, json=fixture_json("nubefact_pending.json"))
        mock.post(NUBEFACT_URL, json=fixture_json("nubefact_rejected_by_sunat.json"))
        mock.post(NUBEFACT_URL, status=400, json=fixture_json("nubefact_error_format.json"))
        mock.post(NUBEFACT_URL, status=401, json=fixture_json("nubefact_error_token.json"))
        mock.post(NUBEFACT_URL, body=requests.ReadTimeout("slow"))
        assert sender().submit(document).outcome == ACCEPTED
        assert sender().submit(document).outcome == PENDING
        rejected = sender().submit(document)
        assert (rejected.outcome, rejected.response_code) == (REJECTED, "2017")
        with pytest.raises(PseRejected, match="no cumple con el formato"):
            sender().submit(document)
        with pytest.raises(PseConfigurationError):
            sender().submit(document)
        with pytest.raises(PseTransientError, match="did not answer in time"):
            sender().submit(document)
        usd = json.loads(mock.calls[0].request.body)
        assert (usd["moneda"], usd["tipo_de_cambio"]) == (2, "3.750")


def test_sender_needs_its_configuration():
    with pytest.raises(PseConfigurationError):
        NubefactSender(url="", token="")
