"""Tables: RUC/DNI validation, IGV split of awkward totals in PEN and USD, amounts in words."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.identity import document_number_error, ruc_check_digit, ruc_error
from billing.taxes import format_money, igv_split, to_decimal
from billing.words import amount_in_words, integer_in_words

RATE = Decimal("0.18")


@pytest.mark.parametrize(
    ("document_type", "number", "valid"),
    [
        ("RUC", "20131312955", True),  # SUNAT's own RUC
        ("RUC", "20100070970", True),  # check digit 11 - 1 = 10 -> 0
        ("RUC", "20000000001", True),  # SUNAT's beta test RUC
        ("RUC", "10456789124", True),  # a person with business income: 10 + DNI + check digit (194 % 11 = 7 -> 4)
        ("RUC", "15000000008", True),  # 25 % 11 = 3 -> 8
        ("RUC", "17000000001", True),  # 33 % 11 = 0 -> 11 -> 1
        ("RUC", "20131312954", False),  # wrong check digit
        ("RUC", "30131312955", False),  # no such prefix
        ("RUC", "2013131295", False),  # 10 digits
        ("RUC", "201313129555", False),  # 12 digits
        ("RUC", "2013131295A", False),
        ("RUC", "", False),
        ("DNI", "45678912", True),
        ("DNI", "00000001", True),
        ("DNI", "4567891", False),
        ("DNI", "456789123", False),
        ("DNI", "4567891A", False),
        ("CE", "001234567", True),
        ("CE", "12", False),
        ("PASSPORT", "AB1234567", True),
        ("PASSPORT", "AB-1234567", False),
        ("PASSPORT", "A" * 16, False),
    ],
)
def test_document_numbers(document_type, number, valid):
    assert (document_number_error(document_type, number) is None) == valid


def test_ruc_errors_say_what_is_wrong():
    assert ruc_error("123") == "A RUC has exactly 11 digits."
    assert ruc_error("30131312955") == "A RUC starts with 10, 15, 17 or 20."
    assert ruc_error("20131312954") == "The RUC's check digit is wrong."
    assert ruc_check_digit("2013131295") == 5


@pytest.mark.parametrize("currency", ["PEN", "USD"])
@pytest.mark.parametrize(
    ("total", "subtotal", "tax"),
    [
        (1, 1, 0),  # 0.01: 0.0085 rounds up to 0.01, no IGV left
        (99, 84, 15),  # 0.99 / 1.18 = 0.8390 -> 0.84
        (100, 85, 15),  # 1.00 / 1.18 = 0.8475 -> 0.85
        (11800, 10000, 1800),  # 118.00: the textbook case
        (99999, 84745, 15254),  # 999.99 / 1.18 = 847.449 -> 847.45
        (1234567, 1046243, 188324),  # 12,345.67 / 1.18 = 10,462.432 -> 10,462.43
        (59, 50, 9),  # 0.59 / 1.18 = 0.5 exactly
        (1, 1, 0),
    ],
)
def test_igv_split_of_awkward_totals(currency, total, subtotal, tax):
    split = igv_split(total=total, rate=RATE)
    assert (split.subtotal, split.tax, split.total) == (subtotal, tax, total)
    # Within SUNAT's tolerance (±1.00) by far: IGV is within one céntimo of value x rate.
    assert abs(Decimal(split.tax) - Decimal(split.subtotal) * RATE) <= 1


def test_half_cents_round_up():
    # 0.295 / 1.18 = 0.25 exactly; 1.475 / 1.18 = 1.25: ROUND_HALF_UP decides ties upward.
    assert igv_split(total=59, rate=RATE).subtotal == 50
    assert igv_split(total=177, rate=RATE).subtotal == 150
    assert igv_split(total=3, rate=RATE).subtotal == 3  # 0.0254 -> 0.03


@given(total=st.integers(min_value=1, max_value=10**13))
def test_igv_split_always_adds_up_and_stays_within_a_cent(total):
    split = igv_split(total=total, rate=RATE)
    assert split.subtotal + split.tax == total
    assert split.subtotal >= 0 and split.tax >= 0
    assert abs(Decimal(split.tax) - Decimal(split.subtotal) * RATE) <= 1


def test_money_formats():
    assert to_decimal(1234567) == Decimal("12345.67")
    assert format_money(1234567, "PEN") == "S/ 12,345.67"
    assert format_money(1, "USD") == "US$ 0.01"


@pytest.mark.parametrize(
    ("minor", "currency", "words"),
    [
        (1, "PEN", "SON: CERO CON 01/100 SOLES"),
        (99, "PEN", "SON: CERO CON 99/100 SOLES"),
        (100, "PEN", "SON: UNO CON 00/100 SOLES"),
        (11850, "PEN", "SON: CIENTO DIECIOCHO CON 50/100 SOLES"),
        (23600, "PEN", "SON: DOSCIENTOS TREINTA Y SEIS CON 00/100 SOLES"),
        (99999, "PEN", "SON: NOVECIENTOS NOVENTA Y NUEVE CON 99/100 SOLES"),
        (1234567, "PEN", "SON: DOCE MIL TRESCIENTOS CUARENTA Y CINCO CON 67/100 SOLES"),
        (2100000, "PEN", "SON: VEINTIÚN MIL CON 00/100 SOLES"),
        (10000000, "PEN", "SON: CIEN MIL CON 00/100 SOLES"),
        (100000000, "PEN", "SON: UN MILLÓN CON 00/100 SOLES"),
        (3150000000, "PEN", "SON: TREINTA Y UN MILLONES QUINIENTOS MIL CON 00/100 SOLES"),
        (1600, "USD", "SON: DIECISÉIS CON 00/100 DÓLARES AMERICANOS"),
        (2101, "USD", "SON: VEINTIUNO CON 01/100 DÓLARES AMERICANOS"),
        (1234567, "USD", "SON: DOCE MIL TRESCIENTOS CUARENTA Y CINCO CON 67/100 DÓLARES AMERICANOS"),
    ],
)
def test_amount_in_words(minor, currency, words):
    assert amount_in_words(minor, currency) == words


@pytest.mark.parametrize(
    ("number", "words"),
    [
        (0, "cero"),
        (15, "quince"),
        (30, "treinta"),
        (101, "ciento uno"),
        (500, "quinientos"),
        (1000, "mil"),
        (1001, "mil uno"),
        (101000, "ciento un mil"),
        (121000, "ciento veintiún mil"),
        (201001, "doscientos un mil uno"),
        (1000000, "un millón"),
        (2000000, "dos millones"),
        (21000021, "veintiún millones veintiuno"),
        (1000000000, "mil millones"),
    ],
)
def test_integers_in_words(number, words):
    assert integer_in_words(number) == words
