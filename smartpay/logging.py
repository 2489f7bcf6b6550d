"""Structured logging: one JSON object per line, tagged with the request id, secrets redacted."""

import json
import logging
import re
from datetime import UTC, datetime

from smartpay import request_context
from smartpay.carddata import mask_card_numbers

# Values of these keys (in dict-like log arguments or `key=value` text) never reach a log line.
_SECRET_WORDS = r"(?:authorization|api[_-]?key|secret|password|token|access[_-]?token|cvv|cvc|security[_-]?code)"  # noqa: S105 (a pattern, not a secret)
_KV = re.compile(rf"(?i)(\b\w*{_SECRET_WORDS}\w*\b[\"']?\s*[:=]\s*[\"']?)([^\s\"',&}}]+)")
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._\-]+")
_OUR_KEYS = re.compile(r"\bsk_(?:live|test)_[A-Za-z0-9]{8,}")


def redact(text: str) -> str:
    text = _BEARER.sub(r"\1 [REDACTED]", text)
    text = _KV.sub(r"\1[REDACTED]", text)
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
        record.request_id = request_context.get_request_id()
        return True


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
                payload[key] = value if isinstance(value, (str, int, bool, type(None))) else redact(str(value))
        if record.exc_text:
            payload["exc"] = record.exc_text
        return json.dumps(payload, default=str)
