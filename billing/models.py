"""Billing: customers' billing profiles, per-series counters, and the documents themselves.

A document (boleta, factura or credit note) is immutable once issued: `Invoice.save()` refuses
anything but the first insert, and `Invoice.objects.update()` accepts only the operational
columns (SUNAT submission and email delivery state, the stored XML). Amounts are integers in minor
units (céntimos/cents) of `currency`, and `subtotal + tax == total` is checked by the database.
"""

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q

from billing.enums import (
    SUNAT_DOCUMENT_CODE,
    CreditNoteReason,
    DocumentType,
    EmailStatus,
    IdentityDocument,
    InvoiceStatus,
    PreferredDocument,
)
from billing.identity import document_number_error
from payments.enums import Currency
from payments.models import ClientApp, Customer, Payment, Refund
from smartpay.ids import PrefixedIdField


class BillingProfile(models.Model):
    """How a customer wants to be invoiced. A factura needs a RUC (checked here and by the database)."""

    customer = models.OneToOneField(Customer, on_delete=models.CASCADE, related_name="billing_profile")
    document_type = models.CharField(max_length=10, choices=IdentityDocument.choices)
    document_number = models.CharField(max_length=15)
    legal_name = models.CharField(max_length=100, help_text="Name or razón social printed on the documents.")
    address = models.CharField(max_length=200, blank=True, help_text="Fiscal address.")
    invoice_email = models.EmailField(blank=True, help_text="Where invoices are emailed (else the customer's email).")
    preferred_document = models.CharField(
        max_length=10, choices=PreferredDocument.choices, default=PreferredDocument.BOLETA
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~Q(preferred_document=PreferredDocument.FACTURA) | Q(document_type=IdentityDocument.RUC),
                name="billing_profile_factura_needs_ruc",
            )
        ]

    def __str__(self) -> str:
        return f"{self.document_type} {self.document_number} {self.legal_name}"

    def clean(self):
        errors = {}
        problem = document_number_error(self.document_type, self.document_number or "")
        if problem:
            errors["document_number"] = problem
        if self.preferred_document == PreferredDocument.FACTURA and self.document_type != IdentityDocument.RUC:
            errors["preferred_document"] = "A factura needs a RUC: set document_type to RUC or ask for a boleta."
        if errors:
            raise ValidationError(errors)


class SeriesCounter(models.Model):
    """The last correlative used in one series. Locked (SELECT ... FOR UPDATE) by the transaction
    that issues the next document, and written in that same transaction: a rollback un-takes the
    number, so numbers have no gaps and no repeats."""

    series = models.CharField(max_length=4, primary_key=True)
    last_correlative = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(last_correlative__lte=99_999_999), name="series_counter_8_digits")
        ]

    def __str__(self) -> str:
        return f"{self.series}: {self.last_correlative}"


# Columns that may change after issue: delivery to SUNAT and to the customer, the stored XML.
MUTABLE_FIELDS = frozenset(
    {
        "status",
        "xml",
        "xml_digest",
        "pse",
        "pse_attempts",
        "pse_last_attempt_at",
        "pse_response",
        "sunat_response_code",
        "sunat_description",
        "pse_error",
        "status_changed_at",
        "email_status",
        "email_attempts",
        "email_claimed_at",
        "emailed_at",
        "email_message_id",
        "email_error",
        "email_resends",
    }
)


class ImmutableDocument(Exception):
    """An attempt to change or delete an issued document."""


class InvoiceQuerySet(models.QuerySet):
    def update(self, **kwargs):
        frozen = sorted(set(kwargs) - MUTABLE_FIELDS)
        if frozen:
            raise ImmutableDocument(f"Issued documents cannot change: {', '.join(frozen)}")
        return super().update(**kwargs)

    def delete(self):
        raise ImmutableDocument("Issued documents are never deleted (a credit note corrects them).")


class Invoice(models.Model):
    """A boleta (03), factura (01) or credit note (07), numbered `SERIES-correlative`.

    Everything printed on the document is a snapshot taken at issue (issuer, buyer, amounts,
    words), so later changes to settings or profiles never alter an issued document.
    """

    id = PrefixedIdField("inv")
    client_app = models.ForeignKey(ClientApp, on_delete=models.PROTECT, related_name="invoices")
    document_type = models.CharField(max_length=12, choices=DocumentType.choices)
    series = models.CharField(max_length=4)
    correlative = models.PositiveIntegerField()
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="invoices")
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="invoices")
    # Credit notes only: the refund they document and the invoice they correct.
    refund = models.ForeignKey(Refund, null=True, blank=True, on_delete=models.PROTECT, related_name="credit_notes")
    credited_invoice = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="credit_notes"
    )
    credit_note_reason = models.CharField(max_length=2, choices=CreditNoteReason.choices, blank=True)
    credit_note_description = models.CharField(max_length=250, blank=True)

    currency = models.CharField(max_length=3, choices=Currency.choices)
    subtotal = models.BigIntegerField(help_text="Minor units: value without IGV (operaciones gravadas).")
    tax = models.BigIntegerField(help_text="Minor units: IGV.")
    total = models.BigIntegerField(help_text="Minor units: subtotal + IGV, what was charged (or refunded).")
    igv_percent = models.DecimalField(max_digits=5, decimal_places=2)
    amount_in_words = models.CharField(max_length=300)

    issue_date = models.DateField(help_text="In America/Lima.")
    issued_at = models.DateTimeField()

    issuer_ruc = models.CharField(max_length=11)
    issuer_name = models.CharField(max_length=200)
    issuer_address = models.CharField(max_length=200)
    issuer_ubigeo = models.CharField(max_length=6)
    issuer_establishment = models.CharField(max_length=4)

    buyer_document_type = models.CharField(max_length=1, help_text="SUNAT catalog 06 code; '-' = varios.")
    buyer_document_number = models.CharField(max_length=15)
    buyer_name = models.CharField(max_length=200)
    buyer_address = models.CharField(max_length=200, blank=True)
    # A boleta above S/ 700 must identify its buyer; one issued without identification is flagged.
    buyer_unidentified_over_limit = models.BooleanField(default=False)
    payment_reference = models.CharField(max_length=200, help_text="Payment id and the gateway's charge id.")

    # --- mutable after issue (MUTABLE_FIELDS) ---
    status = models.CharField(max_length=10, choices=InvoiceStatus.choices, default=InvoiceStatus.ISSUED)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    xml = models.TextField(blank=True, help_text="UBL 2.1, written once on first use, signed when configured.")
    xml_digest = models.CharField(max_length=100, blank=True, help_text="ds:DigestValue of the signed XML.")
    pse = models.CharField(max_length=20, blank=True)
    pse_attempts = models.PositiveSmallIntegerField(default=0)
    pse_last_attempt_at = models.DateTimeField(null=True, blank=True)
    pse_response = models.JSONField(null=True, blank=True, help_text="The PSE's last answer, as received.")
    sunat_response_code = models.CharField(max_length=10, blank=True)
    sunat_description = models.TextField(blank=True)
    pse_error = models.CharField(max_length=300, blank=True)

    email_to = models.EmailField(blank=True)
    email_status = models.CharField(max_length=10, choices=EmailStatus.choices, default=EmailStatus.PENDING)
    email_attempts = models.PositiveSmallIntegerField(default=0)
    email_claimed_at = models.DateTimeField(null=True, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)
    email_message_id = models.CharField(max_length=120, blank=True)
    email_error = models.CharField(max_length=300, blank=True)
    email_resends = models.PositiveSmallIntegerField(default=0)

    objects = InvoiceQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["series", "correlative"], name="invoice_number_unique"),
            models.UniqueConstraint(
                fields=["payment"],
                condition=Q(document_type__in=[DocumentType.BOLETA, DocumentType.FACTURA]),
                name="invoice_once_per_payment",
            ),
            models.UniqueConstraint(
                fields=["refund"], condition=Q(refund__isnull=False), name="credit_note_once_per_refund"
            ),
            models.CheckConstraint(condition=Q(total=F("subtotal") + F("tax")), name="invoice_total_adds_up"),
            models.CheckConstraint(
                condition=Q(total__gt=0) & Q(subtotal__gte=0) & Q(tax__gte=0), name="invoice_amounts_positive"
            ),
            models.CheckConstraint(
                condition=Q(correlative__gte=1) & Q(correlative__lte=99_999_999), name="invoice_correlative_8_digits"
            ),
            models.CheckConstraint(
                condition=(
                    Q(document_type=DocumentType.CREDIT_NOTE, refund__isnull=False, credited_invoice__isnull=False)
                    & ~Q(credit_note_reason="")
                )
                | (~Q(document_type=DocumentType.CREDIT_NOTE) & Q(refund__isnull=True, credited_invoice__isnull=True)),
                name="credit_note_references",
            ),
        ]
        indexes = [
            models.Index(fields=["client_app", "customer"], name="invoice_app_customer_idx"),
            models.Index(fields=["status", "issued_at"], name="invoice_status_issued_idx"),
            models.Index(fields=["email_status", "issued_at"], name="invoice_email_status_idx"),
        ]
        permissions = [("resend_invoice", "Can re-send invoices (email, SUNAT submission)")]

    def __str__(self) -> str:
        return self.number

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ImmutableDocument("Issued documents cannot change; operational state moves with update().")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ImmutableDocument("Issued documents are never deleted (a credit note corrects them).")

    @property
    def number(self) -> str:
        return f"{self.series}-{self.correlative:08d}"

    @property
    def sunat_code(self) -> str:
        return SUNAT_DOCUMENT_CODE[self.document_type]

    @property
    def is_credit_note(self) -> bool:
        return self.document_type == DocumentType.CREDIT_NOTE


class InvoiceLine(models.Model):
    """One line of a document, immutable like it. Amounts in minor units of the document's currency."""

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="lines")
    position = models.PositiveSmallIntegerField()
    description = models.CharField(max_length=500)
    quantity = models.PositiveIntegerField(default=1)
    unit_code = models.CharField(max_length=3, default="ZZ", help_text="Catalog 03: ZZ services, NIU goods.")
    igv_affectation = models.CharField(max_length=2, default="10", help_text="Catalog 07: 10 = gravado onerosa.")
    unit_value = models.BigIntegerField(help_text="Minor units, without IGV.")
    unit_price = models.BigIntegerField(help_text="Minor units, with IGV.")
    subtotal = models.BigIntegerField(help_text="Minor units: quantity x unit value.")
    tax = models.BigIntegerField(help_text="Minor units: IGV of the line.")
    total = models.BigIntegerField(help_text="Minor units: subtotal + IGV.")

    class Meta:
        ordering = ["invoice", "position"]
        constraints = [
            models.UniqueConstraint(fields=["invoice", "position"], name="invoice_line_position_unique"),
            models.CheckConstraint(condition=Q(total=F("subtotal") + F("tax")), name="invoice_line_adds_up"),
        ]

    def __str__(self) -> str:
        return f"{self.invoice_id} #{self.position}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ImmutableDocument("Lines of issued documents cannot change.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ImmutableDocument("Lines of issued documents are never deleted.")
