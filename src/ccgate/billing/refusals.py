"""Which refused requests get a usage row: a sample, so a refused flood costs a counter, not a row each.

A refusal (429, 402, 403, an upstream 4xx ...) bills nothing; its row only tells the user and the
operator that it happened.  One key flooding refused requests wrote thousands of rows a second.  Now,
per key and reason (status and error type), the first refusal of each `interval` seconds is written
and the rest of that interval are not; the metrics (obs.observer) still count every request.
"""

from __future__ import annotations

import time

REFUSAL_ROW_INTERVAL = 1.0  # seconds: at most one usage row per key and reason in each
MAX_TRACKED = 10_000  # (key, reason) pairs remembered before the stale ones are dropped

Reason = tuple[str, int, str | None]  # key id, status, error type


class RefusalSampler:
    """Decides, per refused request, whether its usage row is written."""

    def __init__(self, interval: float = REFUSAL_ROW_INTERVAL) -> None:
        self.interval = interval
        self._last: dict[Reason, float] = {}  # when each reason last had a row written (monotonic)
        self.skipped = 0  # refusals not written, since the process started

    def take(self, key_id: str, status: int, error_type: str | None, now: float | None = None) -> bool:
        """True when this refusal's row should be written."""
        now = time.monotonic() if now is None else now
        reason = (key_id, status, error_type)
        last = self._last.get(reason)
        if last is not None and now - last < self.interval:
            self.skipped += 1
            return False
        if len(self._last) >= MAX_TRACKED:
            self._last = {seen: at for seen, at in self._last.items() if now - at < self.interval}
        self._last[reason] = now
        return True
