"""Prefixed, time-ordered ids (`pay_01hz…`): sortable by creation, unguessable, safe in URLs."""

import secrets
import time

from django.db import models

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def _encode(number: int, length: int) -> str:
    chars = []
    for _ in range(length):
        number, rem = divmod(number, 32)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def make_id(prefix: str) -> str:
    millis = time.time_ns() // 1_000_000
    return f"{prefix}_{_encode(millis, 10)}{_encode(secrets.randbits(80), 16)}"


class PrefixedIdField(models.CharField):
    """Primary key holding `<prefix>_<26 chars>`, generated when a row is built."""

    def __init__(self, prefix: str, *args, **kwargs):
        self.prefix = prefix
        kwargs["max_length"] = 40
        kwargs["primary_key"] = True
        kwargs["editable"] = False
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        for key in ("max_length", "primary_key", "editable"):
            kwargs.pop(key, None)
        kwargs["prefix"] = self.prefix
        return name, path, args, kwargs

    def has_default(self) -> bool:
        return True

    def get_default(self) -> str:
        return make_id(self.prefix)
