"""XLSX in openpyxl's write-only mode: each row goes to the sheet's XML stream as it comes, so a
million rows take the memory of one.

Amounts are written as exact Decimal major units with the number format "#,##0.00" (the currency
is in a column of its own and on the summary), rates as fractions with "0.0%", Lima times as
naive datetimes (spreadsheets have no time zones).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

from reporting.reports.rows import Money, Rate, Sheet
from reporting.reports.summary import Section

MONEY_FORMAT = "#,##0.00"
RATE_FORMAT = "0.0%"
BOLD = Font(bold=True)


def _cells(ws, values: list) -> list:
    out = []
    for value in values:
        if isinstance(value, Money):
            cell = WriteOnlyCell(ws, value=value.major)
            cell.number_format = MONEY_FORMAT
            out.append(cell)
        elif isinstance(value, Rate):
            cell = WriteOnlyCell(ws, value=value.value)
            cell.number_format = RATE_FORMAT
            out.append(cell)
        else:
            out.append(value)
    return out


def _bold(ws, values: Iterable) -> list:
    out = []
    for value in values:
        cell = WriteOnlyCell(ws, value=value)
        cell.font = BOLD
        out.append(cell)
    return out


def _discard(wb: Workbook) -> None:
    """Remove the temporary files openpyxl keeps per write-only sheet (it does so itself only on
    a successful save), so a failed report leaves nothing behind."""
    for ws in wb._sheets:
        writer = getattr(ws, "_writer", None)
        if writer is None:
            continue
        with contextlib.suppress(Exception):  # the stream may be half-written; the file goes anyway
            if ws._rows is not None:
                ws._rows.close()
            writer.xf.close()
        with contextlib.suppress(OSError, ValueError):
            writer.cleanup()


def write(
    path: str,
    *,
    summary: list[Section],
    details: list[tuple[Sheet, Iterator[list]]],
    tick: Callable[[], None],
) -> None:
    wb = Workbook(write_only=True)
    try:
        ws = wb.create_sheet("Summary")
        for section in summary:
            ws.append(_bold(ws, [section.title]))
            ws.append(_bold(ws, section.headers))
            for row in section.rows:
                ws.append(_cells(ws, row))
            ws.append([])
        tick()
        for sheet, rows in details:
            ws = wb.create_sheet(sheet.name)
            ws.freeze_panes = "A2"
            ws.append(_bold(ws, sheet.headers))
            for row in rows:
                ws.append(_cells(ws, row))
                tick()
        wb.save(path)
    except BaseException:
        _discard(wb)
        raise
