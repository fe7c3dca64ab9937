"""Durations as operators write them ("5h", "30m", "1d") and as users read them ("2h 15m")."""

from __future__ import annotations

import math
import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")


def parse_duration(text: str) -> int:
    """Seconds in `text`: a whole number with an optional unit s, m, h or d (seconds if none)."""
    match = _DURATION.match(text.lower())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 30m, 5h, 1d)")
    return int(match.group(1)) * _UNITS[match.group(2) or "s"]


def describe_window(seconds: int) -> str:
    """`5h rolling`, the way the seed's key-status names a window."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit} rolling"
    return f"{seconds}s rolling"


def describe_wait(seconds: float) -> str:
    """A wait for people: `2h 15m`, `4m 10s`, `12s`."""
    total = max(1, math.ceil(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s" if secs else f"{minutes}m"
    return f"{secs}s"
