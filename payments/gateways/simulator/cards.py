"""What a card number tells the simulators: brand, BIN, masked form, and the sandbox test scenario.

The number itself is used only inside the tokenization request and then forgotten.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from smartpay.carddata import luhn_ok

APPROVE = "approve"
REVIEW_3DS = "review_3ds"

# Culqi sandbox cards (culqi.md §14): the number selects the outcome.
CULQI_TEST_CARDS: dict[str, str] = {
    "4111111111111111": APPROVE,
    "5111111111111118": APPROVE,
    "371212121212122": APPROVE,
    "36001212121210": APPROVE,
    "4000020000000000": "stolen_card",
    "4000030000000009": "lost_card",
    "4000040000000008": "insufficient_funds",
    "5400000000000005": "contact_issuer",
    "5400020000000003": "incorrect_cvv",
    "370001000000000": "issuer_not_available",
    "370002000000008": "issuer_decline_operation",
    "36000000000008": "invalid_card",
    "36000100000007": "processing_error",
    "36000200000006": "fraudulent",
    # 3-D Secure cards: the charge answers 200 REVIEW until it is sent with authentication_3DS.
    "4456530000001096": REVIEW_3DS,
    "4456530000001005": REVIEW_3DS,
    "4456530000001070": REVIEW_3DS,
    "4456530000001013": REVIEW_3DS,
    "5200000000001096": REVIEW_3DS,
    "5200000000001005": REVIEW_3DS,
    "5200000000001070": REVIEW_3DS,
    "5200000000001013": REVIEW_3DS,
}

# Test numbers the hosted checkout pages use for the outcome the person picks.
CULQI_CHECKOUT_CARDS = {
    "approve": ("4111111111111111", "123"),
    "insufficient_funds": ("4000040000000008", "295"),
    "stolen_card": ("4000020000000000", "354"),
}
MERCADOPAGO_CHECKOUT_CARD = ("4009175332806176", "123")  # Peru's Visa test card (mercadopago.md §14)

# Peruvian debit BINs from Mercado Pago's local test cards (mercadopago.md §14).
DEBIT_BINS = {"494133", "516003"}


@dataclass(frozen=True)
class CardFacts:
    bin: str
    last4: str
    length: int
    brand: str  # visa | mastercard | amex | diners | unknown
    card_type: str  # credit | debit
    luhn_valid: bool

    @property
    def masked(self) -> str:
        return self.bin + "*" * (self.length - 10) + self.last4


def brand_of(number: str) -> str:
    if number.startswith("4"):
        return "visa"
    two, four = int(number[:2]), int(number[:4])
    # 5031…: Mercado Pago's Mastercard test cards (5031 7557 3453 0604 in Peru) sit outside 51-55.
    if 51 <= two <= 55 or 2221 <= four <= 2720 or four == 5031:
        return "mastercard"
    if two in (34, 37):
        return "amex"
    if two in (36, 38) or 300 <= int(number[:3]) <= 305:
        return "diners"
    return "unknown"


def inspect(number: str) -> CardFacts:
    """Facts about a 13-19 digit card number (the caller has checked the digits)."""
    return CardFacts(
        bin=number[:6],
        last4=number[-4:],
        length=len(number),
        brand=brand_of(number),
        card_type="debit" if number[:6] in DEBIT_BINS else "credit",
        luhn_valid=luhn_ok(number),
    )


def culqi_scenario(number: str) -> str:
    """The Culqi sandbox outcome for a number. Numbers not in the test table are approved (unknown at Culqi)."""
    return CULQI_TEST_CARDS.get(number, APPROVE)


def expiry_in_future(month: int, year: int, now: datetime) -> bool:
    return (year, month) >= (now.year, now.month)


# --- Mercado Pago payment methods (for /v1/payment_methods/search and the payment's method) --------

_MP_METHODS = {
    ("visa", "credit"): ("visa", "Visa", "credit_card", {"id": "1017", "name": "Visa"}),
    ("visa", "debit"): ("debvisa", "Visa Débito", "debit_card", {"id": "1017", "name": "Visa"}),
    ("mastercard", "credit"): ("master", "Mastercard", "credit_card", {"id": "24", "name": "Mastercard"}),
    ("mastercard", "debit"): ("debmaster", "Mastercard Débito", "debit_card", {"id": "24", "name": "Mastercard"}),
    ("amex", "credit"): ("amex", "American Express", "credit_card", {"id": "1042", "name": "American Express"}),
    ("diners", "credit"): ("diners", "Diners", "credit_card", {"id": "1043", "name": "Diners Club"}),
}


def mp_payment_method(brand: str, card_type: str) -> dict | None:
    """Mercado Pago's payment method for a card, or None when MP has none for it."""
    found = _MP_METHODS.get((brand, card_type)) or _MP_METHODS.get((brand, "credit"))
    if found is None:
        return None
    method_id, name, payment_type_id, issuer = found
    return {"id": method_id, "name": name, "payment_type_id": payment_type_id, "issuer": dict(issuer)}


def mp_security_code(brand: str) -> dict:
    if brand == "amex":
        return {"length": 4, "card_location": "front"}
    return {"length": 3, "card_location": "back"}
