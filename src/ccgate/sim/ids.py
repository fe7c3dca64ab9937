"""Anthropic-style identifiers: a prefix, "01", then 22 base62 characters (anthropic-api.md §1.3)."""

from __future__ import annotations

import random
import string

_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_random = random.Random()


def new_id(prefix: str) -> str:
    """A fresh id such as `msg_01XFDUDYJgAACzvnptvVoYEL` (prefix + 24 base62 characters)."""
    return prefix + "01" + "".join(_random.choices(_BASE62, k=22))
