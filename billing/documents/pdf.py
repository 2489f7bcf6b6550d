"""The printed representation of a document (PDF, A4), drawn with fpdf2 (pure Python, no system
libraries). It carries what a finance person checks: issuer and RUC, document type and number,
issue date, buyer and id, lines, subtotal (op. gravada), IGV, total, amount in words, the payment
reference, and for credit notes the document corrected and the reason.

fpdf2's core fonts are Latin-1: Spanish text fits; anything else is transliterated (`_latin1`).
"""

import unicodedata

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from billing.enums import DocumentType
from billing.taxes import format_money, to_decimal
from smartpay.clock import business_time

TITLES = {
    DocumentType.BOLETA: "BOLETA DE VENTA ELECTRÓNICA",
    DocumentType.FACTURA: "FACTURA ELECTRÓNICA",
    DocumentType.CREDIT_NOTE: "NOTA DE CRÉDITO ELECTRÓNICA",
}
SHORT_NAMES = {DocumentType.BOLETA: "Boleta de venta", DocumentType.FACTURA: "Factura"}
IDENTITY_NAMES = {"1": "DNI", "6": "RUC", "4": "CE", "7": "PASAPORTE", "-": "VARIOS"}
CURRENCY_NAMES = {"PEN": "SOLES (PEN)", "USD": "DÓLARES AMERICANOS (USD)"}
NEXT_LINE = {"new_x": XPos.LMARGIN, "new_y": YPos.NEXT}


# Typographic punctuation outside Latin-1 (em/en dash, curly quotes) -> its ASCII look-alike.
_PUNCTUATION = str.maketrans({"\u2014": "-", "\u2013": "-", "\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'"})


def _latin1(text: str) -> str:
    """Text the core fonts can draw: Latin-1 kept, other letters reduced to their base form."""
    text = text.translate(_PUNCTUATION)
    out = []
    for char in text:
        try:
            char.encode("latin-1")
            out.append(char)
        except UnicodeEncodeError:
            base = unicodedata.normalize("NFKD", char).encode("latin-1", "ignore").decode("latin-1")
            out.append(base or "?")
    return "".join(out)


class _Pdf(FPDF):
    def __init__(self, footer_text: str):
        super().__init__(format="A4")
        self.footer_text = footer_text
        self.set_margins(15, 15, 15)
        self.set_auto_page_break(auto=True, margin=20)

    def footer(self):
        self.set_y(-15)
        self.set_font("helvetica", "I", 7)
        self.cell(0, 5, _latin1(self.footer_text), align="C")


def render(invoice, lines, credited=None) -> bytes:
    title = TITLES[invoice.document_type]
    pdf = _Pdf(f"Representación impresa de la {title.lower()} {invoice.number}.")
    pdf.set_title(f"{title} {invoice.number}")
    pdf.set_author(_latin1(invoice.issuer_name))
    pdf.add_page()
    money = lambda minor: format_money(minor, invoice.currency)  # noqa: E731

    # Issuer (left) and the document box (right).
    top = pdf.get_y()
    pdf.set_font("helvetica", "B", 13)
    pdf.multi_cell(100, 6, _latin1(invoice.issuer_name), **NEXT_LINE)
    pdf.set_font("helvetica", "", 9)
    pdf.multi_cell(100, 4.5, _latin1(invoice.issuer_address), **NEXT_LINE)
    left_bottom = pdf.get_y()
    pdf.set_xy(120, top)
    pdf.set_font("helvetica", "B", 10)
    pdf.multi_cell(75, 7, _latin1(f"RUC {invoice.issuer_ruc}\n{title}\n{invoice.number}"), border=1, align="C")
    pdf.set_y(max(left_bottom, pdf.get_y()) + 6)

    # Buyer and document data.
    pdf.set_font("helvetica", "", 9)
    rows = [
        ("Fecha de emisión", invoice.issue_date.strftime("%d/%m/%Y")),
        ("Moneda", CURRENCY_NAMES.get(invoice.currency, invoice.currency)),
        ("Cliente", invoice.buyer_name),
        (
            IDENTITY_NAMES.get(invoice.buyer_document_type, "Documento"),
            invoice.buyer_document_number if invoice.buyer_document_type != "-" else "-",
        ),
    ]
    if invoice.buyer_address:
        rows.append(("Dirección", invoice.buyer_address))
    if credited is not None:
        rows.append(("Documento que modifica", f"{SHORT_NAMES[credited.document_type]} {credited.number}"))
        rows.append(("Motivo", f"{invoice.credit_note_reason} - {invoice.credit_note_description}"))
    rows.append(("Referencia de pago", invoice.payment_reference))
    for label, value in rows:
        pdf.set_font("helvetica", "B", 9)
        pdf.cell(45, 5.5, _latin1(f"{label}:"))
        pdf.set_font("helvetica", "", 9)
        pdf.multi_cell(0, 5.5, _latin1(str(value)), **NEXT_LINE)
    pdf.ln(4)

    # Lines.
    pdf.set_font("helvetica", "", 8.5)
    with pdf.table(
        col_widths=(12, 14, 74, 27, 27, 26),
        text_align=("CENTER", "CENTER", "LEFT", "RIGHT", "RIGHT", "RIGHT"),
        line_height=5.5,
    ) as table:
        table.row(["Cant.", "Unidad", "Descripción", "Valor unitario", "Precio unitario", "Importe"])
        for line in lines:
            table.row(
                [
                    str(line.quantity),
                    line.unit_code,
                    _latin1(line.description),
                    f"{to_decimal(line.unit_value):,.2f}",
                    f"{to_decimal(line.unit_price):,.2f}",
                    f"{to_decimal(line.total):,.2f}",
                ]
            )
    pdf.ln(4)

    # Totals.
    for label, value, bold in (
        ("Op. gravada", money(invoice.subtotal), False),
        (f"IGV ({invoice.igv_percent:.2f} %)", money(invoice.tax), False),
        ("Importe total", money(invoice.total), True),
    ):
        pdf.set_font("helvetica", "B" if bold else "", 10 if bold else 9)
        pdf.cell(140, 6, _latin1(label), align="R")
        pdf.cell(40, 6, _latin1(value), align="R", **NEXT_LINE)
    pdf.ln(3)
    pdf.set_font("helvetica", "B", 9)
    pdf.multi_cell(0, 5, _latin1(invoice.amount_in_words), **NEXT_LINE)
    pdf.ln(3)
    pdf.set_font("helvetica", "", 7.5)
    issued = business_time(invoice.issued_at).strftime("%d/%m/%Y %H:%M")
    notes = [f"Emitido el {issued} (hora de Lima). Forma de pago: Contado."]
    if invoice.xml_digest:
        notes.append(f"Valor resumen: {invoice.xml_digest}")
    pdf.multi_cell(0, 4, _latin1("\n".join(notes)), **NEXT_LINE)
    return bytes(pdf.output())
