"""Detection of primary account numbers (card numbers) in free text.

A run of 13 to 19 digits, optionally grouped by single separators (space, dash, dot, slash or
underscore), that starts like a payment card (2 to 6: Mastercard, Mir, Amex, Diners, JCB, Visa,
Maestro, Discover, UnionPay) and passes the Luhn check is treated as a card number. SmartPay never
accepts, stores or logs one.

Disguises are undone first, character by character (so positions are kept for masking): any
Unicode decimal digit (full-width U+FF14, Arabic-Indic U+0664, …) reads as its ASCII digit, and
compatibility forms of the separators (NFKC: full-width space, dot, slash, hyphen) as theirs.

What is not a card number:
- a digit run glued to a letter on either side: gateway tokens are random letters and digits
  (a Mercado Pago card token is 32 hex characters, and about 1 in 1,500 starts with 14 digits
  that pass Luhn), and a card number is never written inside a word;
- epoch-millisecond timestamps (13 digits starting with 1, a tenth of which pass Luhn): the
  leading-digit rule keeps them out.
"""

import re
import unicodedata

_SEPARATORS = " -./_"
_CANDIDATE = re.compile(r"(?<![0-9A-Za-z])\d(?:[ \-./_]?\d){12,18}(?![0-9A-Za-z])")


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


def _fold_char(char: str) -> str:
    digit = unicodedata.decimal(char, None)
    if digit is not None:
        return chr(48 + digit)
    folded = unicodedata.normalize("NFKC", char)
    if len(folded) == 1 and (folded in _SEPARATORS or folded.isascii()):
        return folded
    if unicodedata.category(char) == "Pd":  # any dash (en dash, em dash, …) separates like "-"
        return "-"
    if unicodedata.category(char) == "Zs":  # any space
        return " "
    return char if char.isascii() or not char.isalnum() else "a"  # a non-ASCII letter still glues


def fold(text: str) -> str:
    """`text` with Unicode digits and separators read as ASCII, one character for one."""
    if text.isascii():
        return text
    return "".join(_fold_char(char) for char in text)


def _is_card_number(candidate: str) -> bool:
    digits = re.sub(r"[ \-./_]", "", candidate)
    return 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn_ok(digits)


def _card_spans(text: str):
    for match in _CANDIDATE.finditer(fold(text)):
        if _is_card_number(match.group()):
            yield match.span()


def contains_card_number(text: str) -> bool:
    return any(True for _ in _card_spans(text))


def mask_card_numbers(text: str) -> str:
    if not any(char.isdigit() for char in text):
        return text
    spans = list(_card_spans(text))
    if not spans:
        return text
    parts, last = [], 0
    for start, end in spans:
        parts.append(text[last:start])
        parts.append("[CARD REDACTED]")
        last = end
    parts.append(text[last:])
    return "".join(parts)


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
