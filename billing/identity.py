"""Peruvian identity documents: DNI, RUC (with its check digit), carné de extranjería, passport."""

import re

RUC_PREFIXES = ("10", "15", "17", "20")  # persons (10, 15, 17) and companies (20)
_RUC_WEIGHTS = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)


def ruc_check_digit(first_ten: str) -> int:
    """SUNAT's module-11 check digit of the first ten digits of a RUC."""
    total = sum(int(digit) * weight for digit, weight in zip(first_ten, _RUC_WEIGHTS, strict=True))
    digit = 11 - total % 11
    return {10: 0, 11: 1}.get(digit, digit)


def ruc_error(value: str) -> str | None:
    """Why `value` is not a valid RUC, or None."""
    if not re.fullmatch(r"[0-9]{11}", value):
        return "A RUC has exactly 11 digits."
    if value[:2] not in RUC_PREFIXES:
        return "A RUC starts with 10, 15, 17 or 20."
    if ruc_check_digit(value[:10]) != int(value[10]):
        return "The RUC's check digit is wrong."
    return None


def document_number_error(document_type: str, value: str) -> str | None:
    """Why `value` is not a valid number for `document_type` (DNI, RUC, CE, PASSPORT), or None."""
    if document_type == "DNI":
        return None if re.fullmatch(r"[0-9]{8}", value) else "A DNI has exactly 8 digits."
    if document_type == "RUC":
        return ruc_error(value)
    if document_type in ("CE", "PASSPORT"):
        # Catalog 06 allows up to 15 alphanumerics for these (SUNAT warning 4208 beyond that).
        return None if re.fullmatch(r"[A-Z0-9]{4,15}", value) else "Use 4 to 15 letters or digits."
    return "Unknown document type."
