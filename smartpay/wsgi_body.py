"""Chunked request bodies (`Transfer-Encoding: chunked`), read whole or refused, never read as empty.

Django reads a body by its Content-Length; a chunked request has none, so without this the body
would look empty and a POST would act on blank fields. Where the server de-chunks the stream and
says so (`wsgi.input_terminated`, as gunicorn does), `ChunkedBodyMiddleware` reads the body up to
MAX_REQUEST_BODY_BYTES and hands Django a sized body; a longer one is a 413. Where it does not
(Django's development server), `BodySizeLimitMiddleware` answers 411 Length Required.
"""

import io
import json

from django.conf import settings

from smartpay.api.errors import PROBLEM_CONTENT_TYPE, problem_type


def is_chunked(environ_or_meta) -> bool:
    return "chunked" in (environ_or_meta.get("HTTP_TRANSFER_ENCODING") or "").lower()


def _problem(start_response, status: int, reason: str, code: str, title: str, detail: str):
    body = json.dumps(
        {"type": problem_type(code), "title": title, "status": status, "detail": detail, "code": code}
    ).encode()
    start_response(f"{status} {reason}", [("Content-Type", PROBLEM_CONTENT_TYPE), ("Content-Length", str(len(body)))])
    return [body]


class ChunkedBodyMiddleware:
    """WSGI wrapper: a de-chunked body becomes a sized one (or a 413 when too long)."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        if is_chunked(environ) and not environ.get("CONTENT_LENGTH") and environ.get("wsgi.input_terminated"):
            limit = settings.MAX_REQUEST_BODY_BYTES
            stream = environ["wsgi.input"]
            chunks, size = [], 0
            while size <= limit:
                chunk = stream.read(min(65536, limit + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            if size > limit:
                return _problem(
                    start_response,
                    413,
                    "Content Too Large",
                    "payload_too_large",
                    "Payload too large",
                    f"The request body may be at most {limit} bytes.",
                )
            body = b"".join(chunks)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        return self.app(environ, start_response)
