"""IGV on tax-inclusive prices, in integer minor units.

SmartPay charges prices that already include IGV. A document must show the value without tax,
the IGV and the total. The split is computed in Decimal and rounded to the céntimo (or cent)
with ROUND_HALF_UP: `value = round(total / (1 + rate))`, `igv = total - value`. So value + IGV
is exactly what was charged, and IGV differs from `value x rate` by less than one céntimo,
far inside SUNAT's tolerance of ±1.00 (rules 3103/4290). No floats anywhere.
"""

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

ROUNDING = ROUND_HALF_UP
CENT = Decimal("0.01")


@dataclass(frozen=True)
class TaxSplit:
    """Minor units of one currency: `subtotal + tax == total`."""

    subtotal: int
    tax: int
    total: int


def igv_split(*, total: int, rate: Decimal) -> TaxSplit:
    """Split a tax-inclusive `total` (minor units, >= 0) at `rate` (e.g. Decimal("0.18"))."""
    if total < 0:
        raise ValueError("total must not be negative")
    subtotal = int((Decimal(total) / (Decimal(1) + rate)).quantize(Decimal(1), rounding=ROUNDING))
    return TaxSplit(subtotal=subtotal, tax=total - subtotal, total=total)


def to_decimal(minor_units: int) -> Decimal:
    """118_00 -> Decimal("118.00"): the two-decimal form used in the XML, the PDF and PSE payloads."""
    return (Decimal(minor_units) / 100).quantize(CENT)


CURRENCY_SYMBOL = {"PEN": "S/", "USD": "US$"}


def format_money(minor_units: int, currency: str) -> str:
    """1234567, "PEN" -> "S/ 12,345.67"."""
    return f"{CURRENCY_SYMBOL.get(currency, currency)} {to_decimal(minor_units):,.2f}"
