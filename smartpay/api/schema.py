"""OpenAPI post-processing: every operation documents the problem+json errors it can answer."""

PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "required": ["type", "title", "status", "detail", "code", "request_id"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string", "description": "Stable machine code, e.g. `validation_error`."},
        "request_id": {"type": "string", "nullable": True},
        "errors": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
            "description": "Per-field messages, for `validation_error`.",
        },
        "decline_code": {"type": "string"},
    },
    "additionalProperties": True,
}

_COMMON = {
    "400": "Invalid request (`validation_error`, `malformed_request`, `card_data_not_allowed`, …)",
    "401": "Missing, unknown or revoked API key",
    "404": "Not found (another client app's objects are not found either)",
    "405": "Method not allowed",
    "406": "Not acceptable",
    "429": "Rate limited; see Retry-After",
    "500": "Internal error; quote request_id",
}
_WRITES = {
    "409": "Conflict (state does not allow it, or the Idempotency-Key is in use)",
    "413": "Body too large",
    "415": "Unsupported media type: send JSON",
    "422": "Refused by a business rule (e.g. `refund_exceeds_payment`, `idempotency_key_reused`)",
    "503": "Gateway unavailable; see Retry-After",
    "504": "The gateway did not answer in time: the outcome is unknown and is settled by asking the gateway",
}


def add_problem_responses(result, generator, request, public):
    result.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    content = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in operations.items():
            extra = dict(_COMMON)
            if method in ("post", "put", "patch", "delete"):
                extra.update(_WRITES)
            responses = operation.setdefault("responses", {})
            for status, description in extra.items():
                responses.setdefault(status, {"description": description, "content": content})
    return result
