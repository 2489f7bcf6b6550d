"""Choices of the billing app, with the SUNAT catalog codes they stand for."""

from django.db import models


class DocumentType(models.TextChoices):
    """What the API calls a document; `SUNAT_CODE` maps it to catalog 01."""

    BOLETA = "boleta", "Boleta de venta electrónica"
    FACTURA = "factura", "Factura electrónica"
    CREDIT_NOTE = "credit_note", "Nota de crédito electrónica"


SUNAT_DOCUMENT_CODE = {DocumentType.FACTURA: "01", DocumentType.BOLETA: "03", DocumentType.CREDIT_NOTE: "07"}
INVOICE_TYPES = (DocumentType.BOLETA, DocumentType.FACTURA)  # one of these per payment, never both


class PreferredDocument(models.TextChoices):
    BOLETA = "boleta"
    FACTURA = "factura"


class IdentityDocument(models.TextChoices):
    """A customer's identity document (billing profile); catalog 06 code in `SUNAT_IDENTITY_CODE`."""

    DNI = "DNI"
    RUC = "RUC"
    CE = "CE", "Carné de extranjería"
    PASSPORT = "PASSPORT", "Pasaporte"


SUNAT_IDENTITY_CODE = {
    IdentityDocument.DNI: "1",
    IdentityDocument.RUC: "6",
    IdentityDocument.CE: "4",
    IdentityDocument.PASSPORT: "7",
}
# Catalog 06 "-": VARIOS - ventas menores a S/ 700.00 y otros (a boleta without an identified buyer).
ANONYMOUS_IDENTITY_CODE = "-"
ANONYMOUS_DOCUMENT_NUMBER = "-"
ANONYMOUS_NAME = "CLIENTES VARIOS"


class InvoiceStatus(models.TextChoices):
    ISSUED = "issued"  # numbered and stored here; not (yet) known to SUNAT
    SUBMITTED = "submitted"  # the PSE has it; SUNAT's verdict is pending (boletas go in the daily summary)
    ACCEPTED = "accepted"  # SUNAT accepted it (code 0, or >= 4000 with observations)
    REJECTED = "rejected"  # refused by SUNAT (2000-3999) or by the PSE's validation


class EmailStatus(models.TextChoices):
    PENDING = "pending"  # queued, never tried
    SENDING = "sending"  # claimed by one worker; a crash here leaves it for staff, never re-sent automatically
    RETRYING = "retrying"  # the ESP certainly did not take it (error answer, no connection): will be tried again
    SENT = "sent"
    FAILED = "failed"  # refused for good (bad address) or out of retries
    UNKNOWN = "unknown"  # it may have been sent (timeout after the request left): staff decide (admin re-send)
    SKIPPED = "skipped"  # no address to send to
    SUPPRESSED = "suppressed"  # the address bounced or complained (notifications.SuppressedAddress): not sent


class CreditNoteReason(models.TextChoices):
    """Catalog 09 codes used for refunds (the others exist but SmartPay does not issue them)."""

    CANCELLATION = "01", "Anulación de la operación"
    DECREASE_IN_VALUE = "09", "Disminución en el valor"
