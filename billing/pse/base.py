"""What a PSE (Proveedor de Servicios Electrónicos) sender does, independent of which one.

A sender gets a frozen `PseDocument` (everything SUNAT needs, amounts as two-decimal Decimals),
submits it and answers a `SubmissionResult`, or raises one of the errors below. Senders never
touch the database; `billing.services` records what they say.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal


@dataclass(frozen=True)
class PseLine:
    description: str
    quantity: int
    unit_code: str
    unit_value: Decimal
    unit_price: Decimal
    subtotal: Decimal
    tax: Decimal
    total: Decimal


@dataclass(frozen=True)
class PseDocument:
    sunat_code: str  # 01 factura, 03 boleta, 07 credit note
    series: str
    correlative: int
    issue_date: date
    currency: str
    igv_percent: Decimal
    buyer_document_type: str  # catalog 06
    buyer_document_number: str
    buyer_name: str
    buyer_address: str
    subtotal: Decimal
    tax: Decimal
    total: Decimal
    lines: tuple[PseLine, ...]
    reference: str = ""  # our id, for the PSE's own records
    # Credit notes only:
    credited_sunat_code: str = ""
    credited_series: str = ""
    credited_correlative: int = 0
    credit_note_reason: str = ""  # catalog 09


ACCEPTED = "accepted"
REJECTED = "rejected"
PENDING = "pending"  # the PSE has it, SUNAT has not answered yet (ask again later)


@dataclass(frozen=True)
class SubmissionResult:
    outcome: str  # ACCEPTED | REJECTED | PENDING
    response_code: str = ""
    description: str = ""
    raw: dict = field(default_factory=dict)


class PseError(Exception):
    def __init__(self, message: str, *, raw: dict | None = None, code: str = ""):
        super().__init__(message)
        self.message = message
        self.raw = raw or {}
        self.code = code


class PseTransientError(PseError):
    """Not processed or not known (network, timeout, 5xx, the PSE's internal error): try again later.
    Re-sending the same series-number is safe: the PSE refuses a duplicate and we then ask for its state."""


class PseConfigurationError(PseTransientError):
    """Credentials, route or account problems: nothing was accepted; retried later, logged loudly."""


class PseRejected(PseError):
    """The PSE refused the document itself (format, validation, out of time): it will not pass as is."""


class InvoiceSender(ABC):
    name: str

    @abstractmethod
    def submit(self, document: PseDocument) -> SubmissionResult:
        """Submit a new document (idempotent per series-number)."""

    @abstractmethod
    def status(self, document: PseDocument) -> SubmissionResult:
        """Ask for the current state of a document submitted earlier."""
