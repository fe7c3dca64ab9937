"""Login throttling, in memory: failed sign-ins per email and client address."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

MAX_TRACKED = 10_000


class LoginThrottle:
    """After `limit` failures within `window` seconds, an email may not sign in from that address
    until the oldest of them ages out; a success forgets the failures."""

    def __init__(self, limit: int = 5, window: float = 900.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def _recent(self, who: tuple[str, str]) -> deque[float]:
        failures = self._failures.get(who, deque())
        horizon = self._clock() - self.window
        while failures and failures[0] <= horizon:
            failures.popleft()
        return failures

    def retry_after(self, email: str, address: str) -> float | None:
        """Seconds until this email may try again from this address; None if it may now."""
        failures = self._recent((email.strip().lower(), address))
        if len(failures) < self.limit:
            return None
        return failures[0] + self.window - self._clock()

    def failed(self, email: str, address: str) -> None:
        who = (email.strip().lower(), address)
        failures = self._recent(who)
        failures.append(self._clock())
        self._failures[who] = failures
        if len(self._failures) > MAX_TRACKED:
            self._forget_stale()

    def succeeded(self, email: str, address: str) -> None:
        self._failures.pop((email.strip().lower(), address), None)

    def _forget_stale(self) -> None:
        horizon = self._clock() - self.window
        for who in [who for who, failures in self._failures.items() if not failures or failures[-1] <= horizon]:
            del self._failures[who]
