"""The UBL 2.1 XML and the PDF of invoices and credit notes, as served by the API."""

import io

import pytest
from lxml import etree
from pypdf import PdfReader
from signxml import XMLVerifier

from billing.models import Invoice
from tests.billing.conftest import pay, refund

pytestmark = pytest.mark.django_db

NS = {
    "inv": "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2",
    "cn": "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2",
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
    "ext": "urn:oasis:names:specification:ubl:schema:xsd:CommonExtensionComponents-2",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
}


def xml_of(api, invoice_id):
    response = api.get(f"/api/v1/invoices/{invoice_id}/xml")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/xml"
    return etree.fromstring(response.content)


def text(root, path):
    (value,) = root.xpath(path, namespaces=NS)
    return value if isinstance(value, str) else value.text


def test_factura_xml_has_what_sunat_requires(api, wire, ruc_customer):
    payment = pay(api, amount=11800, customer=ruc_customer)
    invoice = Invoice.objects.get(payment_id=payment["id"])
    root = xml_of(api, invoice.pk)
    assert root.tag == f"{{{NS['inv']}}}Invoice"
    assert text(root, "cbc:UBLVersionID") == "2.1" and text(root, "cbc:CustomizationID") == "2.0"
    assert text(root, "cbc:ID") == "F001-00000001"
    assert text(root, "cbc:InvoiceTypeCode") == "01"
    assert text(root, "cbc:InvoiceTypeCode/@listID") == "0101"
    assert text(root, "cbc:IssueDate") == invoice.issue_date.isoformat()
    assert text(root, "cbc:DocumentCurrencyCode") == "PEN"
    assert text(root, "cbc:Note[@languageLocaleID='1000']") == "SON: CIENTO DIECIOCHO CON 00/100 SOLES"
    supplier = "cac:AccountingSupplierParty/cac:Party"
    assert text(root, f"{supplier}/cac:PartyIdentification/cbc:ID") == "20000000001"
    assert text(root, f"{supplier}/cac:PartyIdentification/cbc:ID/@schemeID") == "6"
    assert text(root, f"{supplier}/cac:PartyLegalEntity/cbc:RegistrationName") == "SMARTPAY DEMO S.A.C."
    assert text(root, f"{supplier}/cac:PartyLegalEntity/cac:RegistrationAddress/cbc:AddressTypeCode") == "0000"
    customer = "cac:AccountingCustomerParty/cac:Party"
    assert text(root, f"{customer}/cac:PartyIdentification/cbc:ID") == "20131312955"
    assert text(root, f"{customer}/cac:PartyIdentification/cbc:ID/@schemeID") == "6"
    assert text(root, f"{customer}/cac:PartyLegalEntity/cbc:RegistrationName") == "DISTRIBUIDORA ANDINA S.A.C."
    assert text(root, "cac:PaymentTerms/cbc:PaymentMeansID") == "Contado"
    assert text(root, "cac:TaxTotal/cbc:TaxAmount") == "18.00"
    assert text(root, "cac:TaxTotal/cbc:TaxAmount/@currencyID") == "PEN"
    assert text(root, "cac:TaxTotal/cac:TaxSubtotal/cbc:TaxableAmount") == "100.00"
    assert text(root, "cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory/cac:TaxScheme/cbc:ID") == "1000"
    assert text(root, "cac:LegalMonetaryTotal/cbc:LineExtensionAmount") == "100.00"
    assert text(root, "cac:LegalMonetaryTotal/cbc:TaxInclusiveAmount") == "118.00"
    assert text(root, "cac:LegalMonetaryTotal/cbc:PayableAmount") == "118.00"
    (line,) = root.xpath("cac:InvoiceLine", namespaces=NS)
    assert text(line, "cbc:InvoicedQuantity") == "1" and text(line, "cbc:InvoicedQuantity/@unitCode") == "ZZ"
    assert text(line, "cbc:LineExtensionAmount") == "100.00"
    assert text(line, "cac:PricingReference/cac:AlternativeConditionPrice/cbc:PriceAmount") == "118.00"
    assert text(line, "cac:PricingReference/cac:AlternativeConditionPrice/cbc:PriceTypeCode") == "01"
    assert text(line, "cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory/cbc:Percent") == "18.00"
    assert text(line, "cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory/cbc:TaxExemptionReasonCode") == "10"
    assert text(line, "cac:Item/cbc:Description") == "Plan Pro"
    assert text(line, "cac:Price/cbc:PriceAmount") == "100.00"
    # Every amount is in the document's currency (SUNAT 2071).
    assert set(root.xpath("//@currencyID")) == {"PEN"}
    # Unsigned without a certificate: the extension slot is empty.
    assert root.xpath("//ds:Signature", namespaces=NS) == []


def test_boleta_xml_for_an_anonymous_usd_buyer(api, wire):
    payment = pay(api, amount=99, currency="USD")
    root = xml_of(api, Invoice.objects.get(payment_id=payment["id"]).pk)
    assert text(root, "cbc:InvoiceTypeCode") == "03"
    assert text(root, "cbc:ID") == "B001-00000001"
    customer = "cac:AccountingCustomerParty/cac:Party/cac:PartyIdentification/cbc:ID"
    assert (text(root, customer), text(root, f"{customer}/@schemeID")) == ("-", "-")
    assert set(root.xpath("//@currencyID")) == {"USD"}
    assert text(root, "cac:LegalMonetaryTotal/cbc:PayableAmount") == "0.99"
    assert text(root, "cac:TaxTotal/cbc:TaxAmount") == "0.15"
    assert text(root, "cbc:Note") == "SON: CERO CON 99/100 DÓLARES AMERICANOS"


def test_credit_note_xml_references_the_invoice(api, wire, dni_customer):
    payment = pay(api, amount=11800, customer=dni_customer)
    refund(api, payment["id"], amount=5900, reason="Descuento acordado")
    note = Invoice.objects.get(document_type="credit_note")
    root = xml_of(api, note.pk)
    assert root.tag == f"{{{NS['cn']}}}CreditNote"
    assert root.xpath("cbc:InvoiceTypeCode", namespaces=NS) == []
    assert text(root, "cbc:ID") == "BC01-00000001"
    assert text(root, "cac:DiscrepancyResponse/cbc:ReferenceID") == "B001-00000001"
    assert text(root, "cac:DiscrepancyResponse/cbc:ResponseCode") == "09"
    assert text(root, "cac:DiscrepancyResponse/cbc:Description") == "Descuento acordado"
    assert text(root, "cac:BillingReference/cac:InvoiceDocumentReference/cbc:ID") == "B001-00000001"
    assert text(root, "cac:BillingReference/cac:InvoiceDocumentReference/cbc:DocumentTypeCode") == "03"
    assert text(root, "cac:AccountingCustomerParty/cac:Party/cac:PartyIdentification/cbc:ID") == "45678912"
    assert text(root, "cac:LegalMonetaryTotal/cbc:PayableAmount") == "59.00"
    assert text(root, "cac:CreditNoteLine/cbc:CreditedQuantity") == "1"


def test_signed_xml_verifies_with_the_certificate(api, wire, certificate):
    payment = pay(api, amount=11800)
    invoice = Invoice.objects.get(payment_id=payment["id"])
    response = api.get(f"/api/v1/invoices/{invoice.pk}/xml")
    root = etree.fromstring(response.content)
    (signature,) = root.xpath("ext:UBLExtensions/ext:UBLExtension/ext:ExtensionContent/ds:Signature", namespaces=NS)
    assert signature.get("Id") == "SignatureSP"
    assert text(root, "cac:Signature/cac:DigitalSignatureAttachment/cac:ExternalReference/cbc:URI") == "#SignatureSP"
    assert text(signature, "ds:SignedInfo/ds:CanonicalizationMethod/@Algorithm") == (
        "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
    )
    assert text(signature, "ds:SignedInfo/ds:Reference/@URI") == ""
    assert signature.xpath("ds:KeyInfo/ds:X509Data/ds:X509Certificate", namespaces=NS)
    verified = XMLVerifier().verify(response.content, x509_cert=certificate)
    assert verified.signed_xml.tag == f"{{{NS['inv']}}}Invoice"
    # Stored once: the digest is kept, and a second download is byte-identical.
    invoice.refresh_from_db()
    assert invoice.xml_digest == text(signature, "ds:SignedInfo/ds:Reference/ds:DigestValue")
    assert api.get(f"/api/v1/invoices/{invoice.pk}/xml").content == response.content


def test_a_tampered_signed_xml_does_not_verify(api, wire, certificate):
    invoice = Invoice.objects.get(payment_id=pay(api, amount=11800)["id"])
    content = api.get(f"/api/v1/invoices/{invoice.pk}/xml").content.replace(b">118.00<", b">1.00<")
    with pytest.raises(Exception, match="Digest mismatch"):
        XMLVerifier().verify(content, x509_cert=certificate)


def pdf_text(content: bytes) -> str:
    reader = PdfReader(io.BytesIO(content))
    return "\n".join(page.extract_text() for page in reader.pages)


def test_pdf_opens_and_shows_what_finance_checks(api, wire, ruc_customer):
    payment = pay(api, amount=1234567, customer=ruc_customer, description="Suscripción anual — plan Enterprise")
    invoice = Invoice.objects.get(payment_id=payment["id"])
    response = api.get(f"/api/v1/invoices/{invoice.pk}/pdf")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    assert "F001-00000001.pdf" in response["Content-Disposition"]
    text_ = pdf_text(response.content)
    for expected in (
        "F001-00000001",
        "FACTURA ELECTRÓNICA",
        "RUC 20000000001",
        "SMARTPAY DEMO S.A.C.",
        "DISTRIBUIDORA ANDINA S.A.C.",
        "20131312955",
        "Suscripción anual - plan Enterprise",
        "S/ 10,462.43",  # op. gravada
        "S/ 1,883.24",  # IGV
        "S/ 12,345.67",  # total
        "SON: DOCE MIL TRESCIENTOS CUARENTA Y CINCO CON 67/100 SOLES",
        payment["id"],
        invoice.issue_date.strftime("%d/%m/%Y"),
    ):
        assert expected in text_, expected


def test_credit_note_pdf_names_the_document_it_corrects(api, wire):
    payment = pay(api, amount=5000)
    refund(api, payment["id"])
    note = Invoice.objects.get(document_type="credit_note")
    text_ = pdf_text(api.get(f"/api/v1/invoices/{note.pk}/pdf").content)
    assert "NOTA DE CRÉDITO ELECTRÓNICA" in text_ and "BC01-00000001" in text_
    assert "B001-00000001" in text_ and "S/ 50.00" in text_
    assert "01 - Anulación de la operación" in text_


def test_signed_pdf_prints_the_digest(api, wire, certificate):
    invoice = Invoice.objects.get(payment_id=pay(api)["id"])
    text_ = pdf_text(api.get(f"/api/v1/invoices/{invoice.pk}/pdf").content)
    invoice.refresh_from_db()
    assert invoice.xml_digest and f"Valor resumen: {invoice.xml_digest}" in text_
