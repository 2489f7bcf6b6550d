"""UBL 2.1 XML of a document as SUNAT expects it (Invoice for 01/03, CreditNote for 07).

Element order follows the UBL 2.1 schema and SUNAT's profile (CustomizationID 2.0): the
UBLExtensions slot for the enveloped signature, the `cac:Signature` pointer to it, supplier and
customer parties with their catalog 06 ids, payment terms (Contado) on invoices, the discrepancy
and billing reference on credit notes, one IGV subtotal (tax scheme 1000), totals and lines.
Amounts are written with two decimals in the document's currency.

Signing is optional (settings BILLING_SIGNING_KEY_FILE / _CERT_FILE): an enveloped XMLDSig with
inclusive C14N 1.0 and RSA-SHA256 (signxml), placed inside ext:ExtensionContent.
"""

from pathlib import Path

from django.conf import settings
from lxml import etree

from billing.taxes import to_decimal
from smartpay.clock import business_time

NS = {
    "inv": "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2",
    "cn": "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2",
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
    "ext": "urn:oasis:names:specification:ubl:schema:xsd:CommonExtensionComponents-2",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
}
SIGNATURE_ID = "SignatureSP"
OPERATION_TYPE = "0101"  # catalog 51: venta interna
IGV_SCHEME = ("1000", "IGV", "VAT")  # catalog 05


def _q(prefix: str, name: str) -> str:
    return f"{{{NS[prefix]}}}{name}"


def _add(parent, prefix: str, name: str, text=None, **attrs):
    element = etree.SubElement(parent, _q(prefix, name), {key: str(value) for key, value in attrs.items()})
    if text is not None:
        element.text = str(text)
    return element


class _Builder:
    def __init__(self, invoice, lines, credited=None):
        self.invoice = invoice
        self.lines = lines
        self.credited = credited
        self.currency = invoice.currency

    def money(self, parent, name: str, minor_units: int):
        return _add(parent, "cbc", name, f"{to_decimal(minor_units)}", currencyID=self.currency)

    def build(self) -> etree._Element:
        invoice = self.invoice
        credit = invoice.is_credit_note
        root_ns = "cn" if credit else "inv"
        nsmap = {None: NS[root_ns], **{key: NS[key] for key in ("cac", "cbc", "ext", "ds")}}
        root = etree.Element(_q(root_ns, "CreditNote" if credit else "Invoice"), nsmap=nsmap)
        content = _add(_add(_add(root, "ext", "UBLExtensions"), "ext", "UBLExtension"), "ext", "ExtensionContent")
        content.text = None
        _add(root, "cbc", "UBLVersionID", "2.1")
        _add(root, "cbc", "CustomizationID", "2.0")
        _add(root, "cbc", "ID", invoice.number)
        _add(root, "cbc", "IssueDate", invoice.issue_date.isoformat())
        _add(root, "cbc", "IssueTime", business_time(invoice.issued_at).strftime("%H:%M:%S"))
        if not credit:
            _add(root, "cbc", "InvoiceTypeCode", invoice.sunat_code, listID=OPERATION_TYPE)
        _add(root, "cbc", "Note", invoice.amount_in_words, languageLocaleID="1000")
        _add(root, "cbc", "DocumentCurrencyCode", self.currency)
        if credit:
            self.credit_references(root)
        self.signature(root)
        self.supplier(root)
        self.customer(root)
        if not credit:
            terms = _add(root, "cac", "PaymentTerms")
            _add(terms, "cbc", "ID", "FormaPago")
            _add(terms, "cbc", "PaymentMeansID", "Contado")
        self.tax_total(root, taxable=invoice.subtotal, tax=invoice.tax, percent=None)
        totals = _add(root, "cac", "LegalMonetaryTotal")
        self.money(totals, "LineExtensionAmount", invoice.subtotal)
        self.money(totals, "TaxInclusiveAmount", invoice.total)
        self.money(totals, "PayableAmount", invoice.total)
        for line in self.lines:
            self.line(root, line, credit=credit)
        return root

    def credit_references(self, root):
        invoice, credited = self.invoice, self.credited
        discrepancy = _add(root, "cac", "DiscrepancyResponse")
        _add(discrepancy, "cbc", "ReferenceID", credited.number)
        _add(discrepancy, "cbc", "ResponseCode", invoice.credit_note_reason)
        _add(discrepancy, "cbc", "Description", invoice.credit_note_description)
        reference = _add(_add(root, "cac", "BillingReference"), "cac", "InvoiceDocumentReference")
        _add(reference, "cbc", "ID", credited.number)
        _add(reference, "cbc", "DocumentTypeCode", credited.sunat_code)

    def signature(self, root):
        invoice = self.invoice
        signature = _add(root, "cac", "Signature")
        _add(signature, "cbc", "ID", invoice.issuer_ruc)
        party = _add(signature, "cac", "SignatoryParty")
        _add(_add(party, "cac", "PartyIdentification"), "cbc", "ID", invoice.issuer_ruc)
        _add(_add(party, "cac", "PartyName"), "cbc", "Name", invoice.issuer_name)
        attachment = _add(signature, "cac", "DigitalSignatureAttachment")
        _add(_add(attachment, "cac", "ExternalReference"), "cbc", "URI", f"#{SIGNATURE_ID}")

    def supplier(self, root):
        invoice = self.invoice
        party = _add(_add(root, "cac", "AccountingSupplierParty"), "cac", "Party")
        _add(_add(party, "cac", "PartyIdentification"), "cbc", "ID", invoice.issuer_ruc, schemeID="6")
        _add(_add(party, "cac", "PartyName"), "cbc", "Name", invoice.issuer_name)
        legal = _add(party, "cac", "PartyLegalEntity")
        _add(legal, "cbc", "RegistrationName", invoice.issuer_name)
        address = _add(legal, "cac", "RegistrationAddress")
        _add(address, "cbc", "ID", invoice.issuer_ubigeo)
        _add(address, "cbc", "AddressTypeCode", invoice.issuer_establishment)
        _add(_add(address, "cac", "AddressLine"), "cbc", "Line", invoice.issuer_address)
        _add(_add(address, "cac", "Country"), "cbc", "IdentificationCode", "PE")

    def customer(self, root):
        invoice = self.invoice
        party = _add(_add(root, "cac", "AccountingCustomerParty"), "cac", "Party")
        _add(
            _add(party, "cac", "PartyIdentification"),
            "cbc",
            "ID",
            invoice.buyer_document_number,
            schemeID=invoice.buyer_document_type,
        )
        legal = _add(party, "cac", "PartyLegalEntity")
        _add(legal, "cbc", "RegistrationName", invoice.buyer_name)
        if invoice.buyer_address:
            _add(
                _add(_add(legal, "cac", "RegistrationAddress"), "cac", "AddressLine"),
                "cbc",
                "Line",
                invoice.buyer_address,
            )

    def tax_total(self, parent, *, taxable: int, tax: int, percent, affectation: str | None = None):
        total = _add(parent, "cac", "TaxTotal")
        self.money(total, "TaxAmount", tax)
        subtotal = _add(total, "cac", "TaxSubtotal")
        self.money(subtotal, "TaxableAmount", taxable)
        self.money(subtotal, "TaxAmount", tax)
        category = _add(subtotal, "cac", "TaxCategory")
        if percent is not None:
            _add(category, "cbc", "Percent", f"{percent:.2f}")
            _add(category, "cbc", "TaxExemptionReasonCode", affectation)
        scheme = _add(category, "cac", "TaxScheme")
        for name, value in zip(("ID", "Name", "TaxTypeCode"), IGV_SCHEME, strict=True):
            _add(scheme, "cbc", name, value)

    def line(self, root, line, *, credit: bool):
        element = _add(root, "cac", "CreditNoteLine" if credit else "InvoiceLine")
        _add(element, "cbc", "ID", line.position)
        _add(
            element, "cbc", "CreditedQuantity" if credit else "InvoicedQuantity", line.quantity, unitCode=line.unit_code
        )
        self.money(element, "LineExtensionAmount", line.subtotal)
        price = _add(_add(element, "cac", "PricingReference"), "cac", "AlternativeConditionPrice")
        self.money(price, "PriceAmount", line.unit_price)
        _add(price, "cbc", "PriceTypeCode", "01")  # unit price including taxes
        self.tax_total(
            element,
            taxable=line.subtotal,
            tax=line.tax,
            percent=self.invoice.igv_percent,
            affectation=line.igv_affectation,
        )
        item = _add(element, "cac", "Item")
        _add(item, "cbc", "Description", line.description)
        _add(_add(item, "cac", "SellersItemIdentification"), "cbc", "ID", self.invoice.payment_id)
        self.money(_add(element, "cac", "Price"), "PriceAmount", line.unit_value)


def build(invoice, lines, credited=None) -> etree._Element:
    """The unsigned document as an lxml tree."""
    return _Builder(invoice, list(lines), credited).build()


def sign(root: etree._Element, *, key_pem: bytes, cert_pem: bytes) -> tuple[etree._Element, str]:
    """Enveloped XMLDSig inside ext:ExtensionContent. Returns the signed tree and its DigestValue."""
    from signxml import XMLSigner, methods
    from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod

    content = root.find(f"{_q('ext', 'UBLExtensions')}/{_q('ext', 'UBLExtension')}/{_q('ext', 'ExtensionContent')}")
    etree.SubElement(content, _q("ds", "Signature"), Id="placeholder")
    signer = XMLSigner(
        method=methods.enveloped,
        signature_algorithm=SignatureMethod.RSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.CANONICAL_XML_1_0,
    )
    signed = signer.sign(root, key=key_pem, cert=cert_pem)
    signature = signed.find(f".//{_q('ds', 'Signature')}")
    # The Signature element is outside what it signs (enveloped transform), so naming it is safe.
    signature.set("Id", SIGNATURE_ID)
    digest = signed.find(f".//{_q('ds', 'DigestValue')}").text
    return signed, digest


def signing_material() -> tuple[bytes, bytes] | None:
    """(key PEM, certificate PEM) from settings, or None when signing is not configured."""
    key_file, cert_file = settings.BILLING_SIGNING_KEY_FILE, settings.BILLING_SIGNING_CERT_FILE
    if not key_file or not cert_file:
        return None
    return Path(key_file).read_bytes(), Path(cert_file).read_bytes()


def render(invoice, lines, credited=None) -> tuple[bytes, str]:
    """The document's XML bytes (UTF-8, with declaration), signed when configured, and its digest."""
    root = build(invoice, lines, credited)
    digest = ""
    material = signing_material()
    if material:
        root, digest = sign(root, key_pem=material[0], cert_pem=material[1])
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8"), digest
