"""Detection of primary account numbers (card numbers) in free text.

A run of 13 to 19 digits, optionally grouped by single spaces or dashes, that starts like a
payment card (2 to 6: Mastercard, Mir, Amex, Diners, JCB, Visa, Maestro, Discover, UnionPay) and
passes the Luhn check is treated as a card number. SmartPay never accepts, stores or logs one.
The leading digit keeps epoch-millisecond timestamps (13 digits starting with 1, a tenth of
which pass Luhn) from being refused in metadata or masked in logs.
"""

import re

_CANDIDATE = re.compile(r"(?<![\d])\d(?:[ -]?\d){12,18}(?![\d])")


def luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _is_card_number(candidate: str) -> bool:
    digits = re.sub(r"[ -]", "", candidate)
    return 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn_ok(digits)


def _card_spans(text: str):
    for match in _CANDIDATE.finditer(text):
        if _is_card_number(match.group()):
            yield match


def contains_card_number(text: str) -> bool:
    return any(True for _ in _card_spans(text))


def mask_card_numbers(text: str) -> str:
    if not any(char.isdigit() for char in text):
        return text
    return _CANDIDATE.sub(lambda m: "[CARD REDACTED]" if _is_card_number(m.group()) else m.group(), text)


def find_card_data(value, path: str = "") -> str | None:
    """Return the path of the first string (key or value) holding a card number, else None.

    The path goes into error bodies, so a key that is itself a card number appears masked.
    """
    if isinstance(value, str):
        return path or "body" if contains_card_number(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            name = mask_card_numbers(key) if isinstance(key, str) else str(key)
            child = f"{path}.{name}" if path else name
            if isinstance(key, str) and contains_card_number(key):
                return child
            found = find_card_data(item, child)
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = find_card_data(item, f"{path}[{index}]")
            if found:
                return found
    return None
