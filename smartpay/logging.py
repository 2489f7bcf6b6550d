"""Structured logging: one JSON object per line, tagged with the request id, secrets redacted."""

import json
import logging
import re
from datetime import UTC, datetime

from smartpay import request_context
from smartpay.carddata import mask_card_numbers

# Values of these keys (in dict-like log arguments or `key=value` text) never reach a log line.
_SECRET_WORDS = r"(?:authorization|api[_-]?key|secret|password|token|access[_-]?token|cvv|cvc|security[_-]?code)"  # noqa: S105 (a pattern, not a secret)
# A quoted value is redacted up to its closing quote (it may hold spaces), a bare one up to a separator.
_KV = re.compile(rf"(?i)(\b\w*{_SECRET_WORDS}\w*\b[\"']?\s*[:=]\s*)(\"[^\"]*\"|'[^']*'|[^\s\"',&}}]+)")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]+")
_OUR_KEYS = re.compile(r"\bsk_(?:live|test)_[A-Za-z0-9]{8,}")


def _redact_value(match: re.Match) -> str:
    value = match.group(2)
    quote = value[0] if value[0] in "\"'" else ""
    return f"{match.group(1)}{quote}[REDACTED]{quote}"


def redact(text: str) -> str:
    text = _BEARER.sub(r"\1 [REDACTED]", text)
    text = _KV.sub(_redact_value, text)
    text = _OUR_KEYS.sub("[REDACTED]", text)
    return mask_card_numbers(text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        record.exc_info = None
        return True


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # Django logs 4xx/5xx responses after the middleware has returned: it passes the request.
        record.request_id = request_context.get_request_id() or getattr(
            getattr(record, "request", None), "request_id", None
        )
        return True


def _redact_extra(value):
    """`extra=` values reach the line as they are, so they are redacted here like the message."""
    text = value if isinstance(value, str) else str(value)
    cleaned = redact(text)
    if isinstance(value, int) and cleaned == text:
        return value  # amounts and counts stay numbers
    return cleaned


class JsonFormatter(logging.Formatter):
    _EXTRA_SKIP = set(vars(logging.makeLogRecord({}))) | {"message", "request_id", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        for key, value in vars(record).items():
            if key not in self._EXTRA_SKIP and not key.startswith("_"):
                payload[key] = value if isinstance(value, (bool, type(None))) else _redact_extra(value)
        if record.exc_text:
            payload["exc"] = record.exc_text
        return json.dumps(payload, default=str)
