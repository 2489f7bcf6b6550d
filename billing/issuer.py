"""The issuer and the numbering rules, read from settings when needed (never at import)."""

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings

from billing.enums import DocumentType


@dataclass(frozen=True)
class Issuer:
    ruc: str
    name: str
    address: str
    ubigeo: str
    establishment: str


def issuer() -> Issuer:
    return Issuer(
        ruc=settings.BILLING_ISSUER_RUC,
        name=settings.BILLING_ISSUER_NAME,
        address=settings.BILLING_ISSUER_ADDRESS,
        ubigeo=settings.BILLING_ISSUER_UBIGEO,
        establishment=settings.BILLING_ISSUER_ESTABLISHMENT,
    )


def igv_percent() -> Decimal:
    return Decimal(settings.BILLING_IGV_PERCENT).quantize(Decimal("0.01"))


def igv_rate() -> Decimal:
    return igv_percent() / 100


def series_for(document_type: str, *, credited_type: str | None = None) -> str:
    """The series of a new document; a credit note takes the one matching the document it corrects."""
    if document_type == DocumentType.FACTURA:
        return settings.BILLING_SERIES_FACTURA
    if document_type == DocumentType.BOLETA:
        return settings.BILLING_SERIES_BOLETA
    if credited_type == DocumentType.FACTURA:
        return settings.BILLING_SERIES_CREDIT_NOTE_FACTURA
    return settings.BILLING_SERIES_CREDIT_NOTE_BOLETA
