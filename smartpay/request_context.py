"""The id of the request being served, visible to logs and error bodies anywhere in the call."""

import contextvars
import re
import secrets

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


def accept_or_make(incoming: str | None) -> str:
    """Reuse a caller's X-Request-Id when it is a sane token, otherwise make one."""
    if incoming and _SAFE_ID.match(incoming):
        return incoming
    return new_request_id()


def get_request_id() -> str | None:
    return _request_id.get()


def set_request_id(value: str | None) -> contextvars.Token:
    return _request_id.set(value)


def reset_request_id(token: contextvars.Token) -> None:
    _request_id.reset(token)
