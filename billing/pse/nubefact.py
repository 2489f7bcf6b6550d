"""Nubefact's JSON API v1 ("API JSON"): Nubefact signs the document and sends it to SUNAT.

One route per account: `POST https://api.nubefact.com/api/v1/<route-uuid>` with
`Authorization: Token token="<token>"` and an `operacion`: `generar_comprobante` (submit) or
`consultar_comprobante` (state). Errors come back as `{"errors": "...", "codigo": n}`:
10-12 credentials/route/headers, 20-22 format/validation/out of time, 23 "document already
exists", 24 "document does not exist", 40 internal, 50-51 account suspended.
"""

import logging

import requests

from billing.pse.base import (
    ACCEPTED,
    PENDING,
    REJECTED,
    InvoiceSender,
    PseConfigurationError,
    PseDocument,
    PseRejected,
    PseTransientError,
    SubmissionResult,
)

logger = logging.getLogger("smartpay.billing")

DOCUMENT_TYPE = {"01": 1, "03": 2, "07": 3, "08": 4}
CURRENCY = {"PEN": 1, "USD": 2}
# SUNAT catalog 09 -> Nubefact's tipo_de_nota_de_credito (the same numbers except 11/12, swapped).
CREDIT_NOTE_REASON = {f"{code:02d}": code for code in range(1, 14)} | {"11": 12, "12": 11}
IGV_GRAVADO_ONEROSA = 1  # Nubefact's tipo_de_igv numbering, not SUNAT's catalog 07
ALREADY_EXISTS = 23
NOT_FOUND = 24
CONFIGURATION_CODES = {10, 11, 12, 50, 51}
REJECTION_CODES = {20, 21, 22, 24}


def _money(value) -> str:
    return f"{value:.2f}"


class NubefactSender(InvoiceSender):
    name = "nubefact"

    def __init__(
        self, *, url: str, token: str, usd_exchange_rate: str = "", timeout: tuple[float, float] = (5.0, 30.0)
    ):
        if not url or not token:
            raise PseConfigurationError("NUBEFACT_API_URL and NUBEFACT_API_TOKEN must be set.")
        self.url = url
        self.token = token
        self.usd_exchange_rate = usd_exchange_rate
        self.timeout = timeout
        self.session = requests.Session()

    # --- public ---------------------------------------------------------------------------------

    def submit(self, document: PseDocument) -> SubmissionResult:
        try:
            return self._result(self._post(self.payload(document)))
        except PseRejected as error:
            if error.code != str(ALREADY_EXISTS):
                raise
        # Sent before (e.g. a timeout hid the answer): never a second document, ask for the first.
        return self.status(document)

    def status(self, document: PseDocument) -> SubmissionResult:
        query = {
            "operacion": "consultar_comprobante",
            "tipo_de_comprobante": DOCUMENT_TYPE[document.sunat_code],
            "serie": document.series,
            "numero": document.correlative,
        }
        try:
            return self._result(self._post(query))
        except PseRejected as error:
            if error.code == str(NOT_FOUND):  # never reached Nubefact: submit it again later
                raise PseTransientError(error.message, raw=error.raw, code=error.code) from error
            raise

    def payload(self, document: PseDocument) -> dict:
        """The `generar_comprobante` body for `document` (amounts as two-decimal strings)."""
        body = {
            "operacion": "generar_comprobante",
            "tipo_de_comprobante": DOCUMENT_TYPE[document.sunat_code],
            "serie": document.series,
            "numero": document.correlative,
            "sunat_transaction": 1,  # venta interna
            "cliente_tipo_de_documento": document.buyer_document_type,
            "cliente_numero_de_documento": document.buyer_document_number,
            "cliente_denominacion": document.buyer_name[:100],
            "cliente_direccion": document.buyer_address,
            "cliente_email": "",  # SmartPay emails the documents itself
            "fecha_de_emision": document.issue_date.strftime("%d-%m-%Y"),
            "moneda": CURRENCY[document.currency],
            "tipo_de_cambio": self.usd_exchange_rate if document.currency == "USD" else "",
            "porcentaje_de_igv": _money(document.igv_percent),
            "total_gravada": _money(document.subtotal),
            "total_igv": _money(document.tax),
            "total": _money(document.total),
            "enviar_automaticamente_a_la_sunat": True,
            "enviar_automaticamente_al_cliente": False,
            "observaciones": document.reference,
            "items": [
                {
                    "unidad_de_medida": line.unit_code,
                    "descripcion": line.description[:250],
                    "cantidad": str(line.quantity),
                    "valor_unitario": _money(line.unit_value),
                    "precio_unitario": _money(line.unit_price),
                    "subtotal": _money(line.subtotal),
                    "tipo_de_igv": IGV_GRAVADO_ONEROSA,
                    "igv": _money(line.tax),
                    "total": _money(line.total),
                    "anticipo_regularizacion": False,
                }
                for line in document.lines
            ],
        }
        if document.sunat_code == "07":
            body |= {
                "documento_que_se_modifica_tipo": DOCUMENT_TYPE[document.credited_sunat_code],
                "documento_que_se_modifica_serie": document.credited_series,
                "documento_que_se_modifica_numero": document.credited_correlative,
                "tipo_de_nota_de_credito": CREDIT_NOTE_REASON[document.credit_note_reason],
            }
        return body

    # --- wire -----------------------------------------------------------------------------------

    def _post(self, body: dict) -> dict:
        try:
            response = self.session.post(
                self.url,
                json=body,
                headers={"Authorization": f'Token token="{self.token}"', "Content-Type": "application/json"},
                timeout=self.timeout,
            )
        except requests.Timeout as exc:
            raise PseTransientError(f"Nubefact did not answer in time: {exc.__class__.__name__}") from exc
        except requests.RequestException as exc:
            raise PseTransientError(f"Nubefact unreachable: {exc.__class__.__name__}") from exc
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            if response.status_code >= 500 or response.status_code == 429:
                raise PseTransientError(f"Nubefact answered HTTP {response.status_code}")
            raise PseTransientError(f"Nubefact answered HTTP {response.status_code} without JSON")
        if "errors" in data:
            self._raise_error(data, response.status_code)
        if response.status_code >= 400:
            raise PseTransientError(f"Nubefact answered HTTP {response.status_code}", raw=data)
        return data

    def _raise_error(self, data: dict, http_status: int):
        message = str(data.get("errors"))[:250]
        try:
            code = int(data.get("codigo"))
        except (TypeError, ValueError):
            code = 0
        if code == ALREADY_EXISTS or code in REJECTION_CODES:
            raise PseRejected(message, raw=data, code=str(code))
        if code in CONFIGURATION_CODES:
            logger.error("nubefact configuration error", extra={"codigo": code, "detail": message})
            raise PseConfigurationError(message, raw=data, code=str(code))
        raise PseTransientError(message or f"Nubefact answered HTTP {http_status}", raw=data, code=str(code))

    @staticmethod
    def _result(data: dict) -> SubmissionResult:
        """Map Nubefact's answer: accepted by SUNAT, rejected (2000-3999), or still pending."""
        code = str(data.get("sunat_responsecode") or "").strip()
        description = str(data.get("sunat_description") or data.get("sunat_soap_error") or "")[:1000]
        if data.get("aceptada_por_sunat") is True:
            return SubmissionResult(outcome=ACCEPTED, response_code=code or "0", description=description, raw=data)
        if code.isdigit() and 2000 <= int(code) <= 3999:
            return SubmissionResult(outcome=REJECTED, response_code=code, description=description, raw=data)
        # No verdict yet (boletas travel in SUNAT's daily summary), or an exception (0100-1999) that
        # Nubefact resends itself: ask again later.
        return SubmissionResult(outcome=PENDING, response_code=code, description=description, raw=data)
