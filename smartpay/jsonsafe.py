"""JSON from outside, bounded before it is parsed.

Python's parser recurses once per nesting level, so a body nested a few thousand deep raises
`RecursionError` (a 500) instead of a parse error. `check_depth` measures the nesting with one
pass over the brackets outside strings, and `loads` refuses a document deeper than
`MAX_JSON_DEPTH` as malformed (a `ValueError`, which callers already answer with a 400).
Size is bounded earlier, by `BodySizeLimitMiddleware` (MAX_REQUEST_BODY_BYTES).
"""

import json
import re

MAX_JSON_DEPTH = 32  # the deepest body SmartPay accepts (its own contract needs about 4)

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")


class JSONTooDeep(ValueError):
    def __init__(self, limit: int):
        super().__init__(f"JSON nested deeper than {limit} levels")
        self.limit = limit


def check_depth(raw: bytes | str, limit: int = MAX_JSON_DEPTH) -> None:
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return  # cannot be deeper than the number of openings
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub(b'""', raw)):
        if match.group() in (b"[", b"{"):
            depth += 1
            if depth > limit:
                raise JSONTooDeep(limit)
        else:
            depth -= 1


def loads(raw: bytes | str, limit: int = MAX_JSON_DEPTH, **kwargs):
    check_depth(raw, limit)
    return json.loads(raw, **kwargs)
