"""Prefixed, time-ordered ids (`pay_01hz…`): sortable by creation, unguessable, safe in URLs."""

import secrets
import threading
import time

from django.db import models

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def _encode(number: int, length: int) -> str:
    chars = []
    for _ in range(length):
        number, rem = divmod(number, 32)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


_lock = threading.Lock()
_last = [0, 0]  # (millis, random tail) of the last id made in this process


def make_id(prefix: str) -> str:
    """48 bits of milliseconds + 80 random bits. Within one millisecond, ids made by this process
    increase (the tail is incremented), so "newest first" ordering by id holds for one writer."""
    millis = time.time_ns() // 1_000_000
    with _lock:
        if millis <= _last[0]:
            millis, tail = _last[0], (_last[1] + 1) % (1 << 80)
        else:
            tail = secrets.randbits(79)  # leaves room to increment without overflowing
        _last[0], _last[1] = millis, tail
    return f"{prefix}_{_encode(millis, 10)}{_encode(tail, 16)}"


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
