"""Outbound HTTP errors, read the same way for every provider we send to (email, PSE, …)."""

import requests


def request_never_left(error: BaseException) -> bool:
    """True when the request certainly did not reach the provider (no connection was made).

    Anything else (a read timeout, a connection dropped after sending, no answer) may have been
    received: such a request must not be sent again blindly, or the recipient could get it twice.
    """
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, (requests.ConnectTimeout, ConnectTimeoutError, NewConnectionError)):
            return True
        nested = [arg for arg in getattr(error, "args", ()) if isinstance(arg, BaseException)]
        reason = getattr(error, "reason", None)
        error = (
            error.__cause__
            or error.__context__
            or (nested[0] if nested else None)
            or (reason if isinstance(reason, BaseException) else None)
        )
    return False
