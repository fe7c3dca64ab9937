"""Whose fault is an upstream failure: the account's, or the request's?

One tenant must not be able to take a shared account from everyone by sending requests that make
the upstream fail.  So an account is cooled down only on evidence against the account:

- the same request then succeeded on another account (the failure belonged to the first account);
- a 429 whose own `anthropic-ratelimit-*` headers show a window used up (rate limits are per
  account), or that carries none of them;
- unexplained failures (5xx, 529 without a success elsewhere, a timeout, a reset) from several
  different users within a window (`Strikes`).

A request that fails the same way on two accounts is the request's fault: failover stops and
neither account is cooled.  A request's own 4xx never cools anything.  A 401/403 is confirmed by a
probe with the account's own credentials before the account is disabled (relay.probe).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

STRIKE_WINDOW = 60.0  # seconds in which unexplained failures are counted together
STRIKE_FAILURES = 3  # ... how many of them cool the account
STRIKE_USERS = 2  # ... coming from at least this many different users

RATELIMIT_KINDS = ("requests", "tokens", "input-tokens", "output-tokens")


def rate_limit_room(headers: Mapping[str, str]) -> bool:
    """Whether a 429's own `anthropic-ratelimit-*-remaining` headers show room in every window: then
    the refusal was about this request (too large for what is left), not an exhausted account."""
    seen = False
    for kind in RATELIMIT_KINDS:
        value = headers.get(f"anthropic-ratelimit-{kind}-remaining")
        if value is None:
            continue
        try:
            if float(value) <= 0:
                return False
        except ValueError:
            return False
        seen = True
    return seen


@dataclass(slots=True)
class Strikes:
    """Unexplained failures per account as (time, user); the account is cooled once they come from
    enough requests of enough different users within the window, never from one user alone."""

    window: float = STRIKE_WINDOW
    failures: int = STRIKE_FAILURES
    users: int = STRIKE_USERS
    _book: dict[int, deque[tuple[float, str]]] = field(default_factory=dict)

    def strike(self, account_id: int, user: str, now: float | None = None) -> bool:
        """Count one failure; True (and a clean slate) when the evidence now suffices to cool the account."""
        now = time.monotonic() if now is None else now
        book = self._book.setdefault(account_id, deque())
        book.append((now, user))
        while book and book[0][0] <= now - self.window:
            book.popleft()
        if len(book) >= self.failures and len({who for _, who in book}) >= self.users:
            del self._book[account_id]
            return True
        return False

    def pending(self, account_id: int) -> int:
        """Failures counted against the account and not yet acted on."""
        return len(self._book.get(account_id, ()))
