"""An account's upstream quota as its anthropic-ratelimit-* response headers last told it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

KINDS = ("requests", "input-tokens", "output-tokens", "tokens")


@dataclass(frozen=True, slots=True)
class Window:
    """One rate-limit window: its size, what remains of it, and when it is whole again (epoch ms)."""

    limit: int | None
    remaining: int | None
    reset_ms: int | None


def _int(value: str | None) -> int | None:
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        return None


def _reset_ms(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def parse_ratelimit(headers: Mapping[str, str]) -> dict[str, Window]:
    """Each window the headers report, by kind (requests, input-tokens, output-tokens, tokens)."""
    windows = {}
    for kind in KINDS:
        prefix = f"anthropic-ratelimit-{kind}-"
        limit, remaining = _int(headers.get(prefix + "limit")), _int(headers.get(prefix + "remaining"))
        if limit is None and remaining is None:
            continue
        windows[kind] = Window(limit, remaining, _reset_ms(headers.get(prefix + "reset")))
    return windows


def windows_as_dict(windows: Mapping[str, Window]) -> dict[str, dict[str, int | None]]:
    """JSON-ready form, as stored in account_status.ratelimit and shown by `accounts list`."""
    return {kind: asdict(window) for kind, window in windows.items()}


def exhausted(windows: Mapping[str, Window], now_ms: int) -> str | None:
    """The first window with nothing left that has not reset yet, e.g. "input-tokens exhausted"."""
    for kind, window in windows.items():
        if window.remaining == 0 and (window.reset_ms is None or window.reset_ms > now_ms):
            return f"{kind} exhausted"
    return None


def merge_reports(reports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One account's headroom over the live processes' account_status rows: the newest windows any
    process saw, and a reason it cannot be routed to only if no process can route to it."""
    seen = [report for report in reports if report.get("ratelimit")]
    newest = max(seen, key=lambda report: report["updated_ms"], default=None)
    reasons = [report.get("unroutable") for report in reports]
    return {"ratelimit": newest["ratelimit"] if newest else None,
            "unroutable": reasons[0] if reasons and all(reasons) else None}
