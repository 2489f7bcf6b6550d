"""gunicorn settings read from the working directory (the image's /app) by `gunicorn smartpay.wsgi`.

Request limits are enforced here, before the application sees a request, so these answers are
gunicorn's own (plain text, not problem+json): a request line over `limit_request_line` bytes is a
414, a header line over `limit_request_field_size` bytes or more than `limit_request_fields` headers
is a 431. The body limit (413, MAX_REQUEST_BODY_BYTES) is the application's, as problem+json.
The OpenAPI description states the same numbers (smartpay/settings.py, SPECTACULAR_SETTINGS).
"""

limit_request_line = 8190  # bytes of "METHOD /path?query HTTP/1.1": a longer URL is a 414
limit_request_fields = 100  # headers per request
limit_request_field_size = 8190  # bytes of one header line: a longer one is a 431
