"""PDF: the summary only (A4 landscape, fpdf2), one table per section. Detail rows belong in the
XLSX or CSV formats; a PDF of a million payments would help nobody."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from billing.documents.pdf import _latin1
from billing.taxes import CURRENCY_SYMBOL
from reporting.reports.rows import Money, Rate, Sheet
from reporting.reports.summary import Section

NEXT_LINE = {"new_x": XPos.LMARGIN, "new_y": YPos.NEXT}


def _text(value, currency: str) -> str:
    if isinstance(value, Money):
        return f"{CURRENCY_SYMBOL.get(currency, currency)} {value.major:,.2f}"
    if isinstance(value, Rate):
        return f"{value.value * 100:.1f}%"
    if value is None:
        return ""
    return _latin1(str(value))


class _Pdf(FPDF):
    def __init__(self, footer_text: str):
        super().__init__(orientation="L", format="A4")
        self.footer_text = footer_text
        self.set_margins(12, 12, 12)
        self.set_auto_page_break(auto=True, margin=15)

    def footer(self):
        self.set_y(-12)
        self.set_font("helvetica", "I", 7)
        self.cell(0, 5, _latin1(f"{self.footer_text} - page {self.page_no()}"), align="C")


def _table(pdf: _Pdf, section: Section, currency: str) -> None:
    columns = section.pdf_columns or list(range(len(section.headers)))
    width = pdf.epw / len(columns) if len(columns) > 2 else pdf.epw / 3
    pdf.set_font("helvetica", "B", 10)
    pdf.cell(0, 7, _latin1(section.title), **NEXT_LINE)
    pdf.set_font("helvetica", "B", 7.5)
    for index in columns:
        pdf.cell(width, 5, _latin1(section.headers[index])[:40], border="B")
    pdf.ln(5)
    pdf.set_font("helvetica", "", 7.5)
    if not section.rows:
        pdf.cell(0, 5, "No data in the period.", **NEXT_LINE)
    for row in section.rows:
        for position, index in enumerate(columns):
            align = "L" if position == 0 else "R"
            pdf.cell(width, 4.5, _text(row[index], currency)[:45], align=align)
        pdf.ln(4.5)
    pdf.ln(3)


def write(
    path: str,
    *,
    summary: list[Section],
    details: list[tuple[Sheet, Iterator[list]]],
    tick: Callable[[], None],
    currency: str = "PEN",
) -> None:
    pdf = _Pdf(footer_text="SmartPay period report")
    pdf.add_page()
    pdf.set_font("helvetica", "B", 14)
    pdf.cell(0, 9, "SmartPay - period report", **NEXT_LINE)
    for section in summary:
        _table(pdf, section, currency)
    pdf.output(path)
    tick()
