"""Range checks for what operators and users type: one place for the forms, the admin API and the CLI.

Each check returns the value it accepts or raises `InputError` (a ValueError) whose message names
the field and says what is accepted.  The bounds keep every value inside what the database stores
(32-bit integers for counts, 64-bit micro-dollars for money) and every date inside what Python and
the pages can show.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

MAX_COUNT = 2**31 - 1  # limits, priorities, weights, token budgets: an INTEGER column everywhere
MAX_USD = 1_000_000_000.0  # a billion dollars: 10**15 micro-dollars, far inside a BIGINT
EARLIEST_DAY = date(2000, 1, 1)
LATEST_DAY = date(2999, 12, 31)
MIN_EPOCH_MS = int(datetime.combine(EARLIEST_DAY, datetime.min.time(), UTC).timestamp() * 1000)
MAX_EPOCH_MS = int(datetime.combine(LATEST_DAY, datetime.max.time(), UTC).timestamp() * 1000)


class InputError(ValueError):
    """A value out of range or malformed; the message is for the person who typed it."""


def whole_number(raw: str, label: str, *, minimum: int = 0) -> int:
    """A whole number typed as ASCII digits (thousands separators `,` and `_` allowed), in range."""
    cleaned = raw.strip().replace(",", "").replace("_", "")
    if not (cleaned.isascii() and cleaned.isdigit()):
        raise InputError(f"{label} must be a whole number from {minimum} to {MAX_COUNT}")
    return count(int(cleaned), label, minimum=minimum)


def count(value: int, label: str, *, minimum: int = 0) -> int:
    """A whole number from `minimum` to MAX_COUNT."""
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_COUNT:
        raise InputError(f"{label} must be a whole number from {minimum} to {MAX_COUNT}")
    return value


def usd(value: float, label: str, *, negative: bool = False) -> float:
    """An amount of dollars: finite, at most MAX_USD either way (negative only if allowed)."""
    low = -MAX_USD if negative else 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= MAX_USD:
        raise InputError(f"{label} must be an amount of dollars from {low:,.0f} to {MAX_USD:,.0f}")
    return float(value)


def day(value: date, label: str) -> date:
    """A calendar day between EARLIEST_DAY and LATEST_DAY."""
    if not EARLIEST_DAY <= value <= LATEST_DAY:
        raise InputError(f"{label} must lie between {EARLIEST_DAY} and {LATEST_DAY}")
    return value


def iso_day(raw: str, label: str) -> date | None:
    """A YYYY-MM-DD day in range, or None when empty."""
    if not raw.strip():
        return None
    try:
        parsed = date.fromisoformat(raw.strip())
    except ValueError:
        raise InputError(f"{label} must be a date like 2026-01-31") from None
    return day(parsed, label)


def moment(raw: str, label: str) -> datetime:
    """An ISO date (midnight UTC) or date-time whose UTC day lies in range."""
    try:
        parsed = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{label} must be a date like 2027-01-31 or 2027-01-31T12:00:00Z") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        in_utc = parsed.astimezone(UTC)
    except OverflowError:
        raise InputError(f"{label} must lie between {EARLIEST_DAY} and {LATEST_DAY}") from None
    day(in_utc.date(), label)
    return in_utc


def expiry(raw: str | None, label: str = "expires") -> str | None:
    """A key expiry as given (None: unchanged, "": cleared), checked to be a date in range."""
    if raw:
        moment(raw, label)
    return raw


def epoch_ms(value: int, label: str) -> int:
    """Epoch milliseconds whose day lies in range (a usage filter, for example)."""
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_EPOCH_MS <= value <= MAX_EPOCH_MS:
        raise InputError(f"{label} must be epoch milliseconds from {MIN_EPOCH_MS} to {MAX_EPOCH_MS}")
    return value
