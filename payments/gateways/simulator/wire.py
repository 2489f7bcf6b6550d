"""HTTP edge helpers shared by both simulators: JSON in and out, ids, timestamps, auth headers.

Decimals are parsed with `parse_float=Decimal` and written back as JSON numbers with their exact
text (`58.80`, never through float), which the standard encoder cannot do by itself.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.http import HttpResponse

_ALNUM = string.ascii_letters + string.digits
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MP_TZ = timezone(timedelta(hours=-4))  # Mercado Pago stamps its dates at UTC-4
CENT = Decimal("0.01")
VARIABLE_FEE = Decimal("0.0399")  # sandbox figures (culqi.md §15): 3.99 % of the amount …
IGV = Decimal("0.18")  # … plus 18 % IGV on that fee

# A Decimal is first encoded as a string carrying this per-process marker, then unquoted.
_MARK = "dec" + secrets.token_hex(8) + ":"
_MARKED = re.compile('"' + re.escape(_MARK) + r'(-?\d+(?:\.\d+)?(?:E[+-]?\d+)?)"')


class SimulatorError(Exception):
    """An answer other than success, already in the simulated gateway's shape."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        super().__init__(body.get("merchant_message") or body.get("message") or str(status))
        self.status = status
        self.body = body
        self.headers = headers or {}


class _Encoder(json.JSONEncoder):
    def default(self, o: Any) -> Any:
        if isinstance(o, Decimal):
            return f"{_MARK}{o}"
        return super().default(o)


def dumps(value: Any) -> str:
    return _MARKED.sub(r"\1", json.dumps(value, cls=_Encoder, ensure_ascii=False, separators=(",", ":")))


def json_response(
    value: Any, *, status: int = 200, headers: dict[str, str] | None = None, charset_header: bool = False
) -> HttpResponse:
    content_type = "application/json;charset=UTF-8" if charset_header else "application/json"
    response = HttpResponse(dumps(value).encode(), status=status, content_type=content_type)
    for name, header_value in (headers or {}).items():
        response[name] = header_value
    return response


class BadJson(ValueError):
    pass


def _refuse_constant(name: str) -> None:
    raise BadJson(f"JSON constant {name} is not allowed")


def parse_json_body(request) -> dict[str, Any]:
    """The request body as a JSON object (empty body → {}); floats become Decimal."""
    raw = request.body
    if not raw or not raw.strip():
        return {}
    try:
        value = json.loads(raw, parse_float=Decimal, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadJson("body is not JSON") from exc
    if not isinstance(value, dict):
        raise BadJson("body is not a JSON object")
    return value


def canonical(value: Any) -> str:
    """Stable text of a parsed body, for idempotency fingerprints."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def bearer(request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip() or " " in credential.strip():
        return None
    return credential.strip()


# --- ids -----------------------------------------------------------------------------------------


def alnum(length: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


def culqi_id(prefix: str) -> str:
    """`tkn_test_` + 16 alphanumerics (25 characters, §3)."""
    return f"{prefix}_test_{alnum(16)}"


def numeric_id(digits: int) -> int:
    return 10 ** (digits - 1) + secrets.randbelow(9 * 10 ** (digits - 1))


# --- time ----------------------------------------------------------------------------------------


def epoch_ms(moment: datetime | None, *, whole_seconds: bool = False) -> int | None:
    """Unix epoch milliseconds. Culqi shows tokens and charges rounded to the second (…000, observed)."""
    if moment is None:
        return None
    ms = (moment - _EPOCH) // timedelta(milliseconds=1)
    return ms - ms % 1000 if whole_seconds else ms


def epoch_s(moment: datetime | None) -> int | None:
    return None if moment is None else (moment - _EPOCH) // timedelta(seconds=1)


def from_epoch(value: int) -> datetime:
    """Unix time in seconds or milliseconds (told apart by magnitude) as an aware datetime."""
    if abs(value) > 10**11:
        return _EPOCH + timedelta(milliseconds=value)
    return _EPOCH + timedelta(seconds=value)


def mp_datetime(moment: datetime | None) -> str | None:
    """Mercado Pago's `2024-01-15T10:30:00.000-04:00`."""
    if moment is None:
        return None
    return moment.astimezone(_MP_TZ).isoformat(timespec="milliseconds")


# --- money ---------------------------------------------------------------------------------------


def decimal_amount(minor: int) -> Decimal:
    """1999 → Decimal("19.99"), always two places."""
    return (Decimal(minor) / 100).quantize(CENT)


def minor_from_decimal(value: Any) -> int | None:
    """An amount with at most two decimals → minor units; None when it is not such an amount."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        return None
    amount = Decimal(value)
    if not amount.is_finite():
        return None
    cents = amount * 100
    if cents != cents.to_integral_value():
        return None
    return int(cents)


def sandbox_fees(amount: int) -> dict[str, int]:
    """The gateway's fee on `amount` céntimos, in céntimos: 1000 → 40 + 7 IGV = 47, 953 to the merchant."""
    variable = int((Decimal(amount) * VARIABLE_FEE).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    taxes = int((Decimal(variable) * IGV).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return {"variable": variable, "taxes": taxes, "total": variable + taxes, "transfer": amount - variable - taxes}
