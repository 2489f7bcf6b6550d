"""CSV: a zip of one file per sheet (summary.csv, payments.csv, ...), each written straight into
the deflated archive through a text wrapper, row by row.

UTF-8 with a byte-order mark (Excel then reads names with ñ and tildes right), comma-separated.
Amounts are decimal major units ("1234.50", no thousands separator), rates fractions ("0.8571").
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable, Iterator

from reporting.reports.rows import Money, Rate, Sheet
from reporting.reports.summary import Section


def _plain(values: list) -> list:
    out = []
    for value in values:
        if isinstance(value, Money):
            out.append(value.major)
        elif isinstance(value, Rate):
            out.append(value.value)
        elif value is None:
            out.append("")
        else:
            out.append(value)
    return out


def _open_csv(archive: zipfile.ZipFile, name: str) -> io.TextIOWrapper:
    return io.TextIOWrapper(archive.open(name, "w", force_zip64=True), encoding="utf-8-sig", newline="")


def write(
    path: str,
    *,
    summary: list[Section],
    details: list[tuple[Sheet, Iterator[list]]],
    tick: Callable[[], None],
) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with _open_csv(archive, "summary.csv") as text:
            writer = csv.writer(text)
            for section in summary:
                writer.writerow([section.title])
                writer.writerow(section.headers)
                writer.writerows(_plain(row) for row in section.rows)
                writer.writerow([])
        tick()
        for sheet, rows in details:
            with _open_csv(archive, sheet.filename) as text:
                writer = csv.writer(text)
                writer.writerow(sheet.headers)
                for row in rows:
                    writer.writerow(_plain(row))
                    tick()
