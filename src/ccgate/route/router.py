"""Choosing an upstream account for a request, and keeping score of each account's health."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from ccgate.route.pool import Account, AccountPool

log = logging.getLogger("ccgate.route")

RATE_LIMIT_DEFAULT = 60.0
RATE_LIMIT_CAP = 30 * 60.0
OVERLOAD_COOLDOWN = 5.0
FAILURE_BASE = 2.0
FAILURE_CAP = 300.0


@dataclass(slots=True)
class Health:
    """What the router has learned about one account in this process."""

    cooldown_until: float = 0.0
    cause: str | None = None
    consecutive_failures: int = 0
    last_error: str | None = None
    in_flight: int = 0


def cooldown_for(cause: str, consecutive_failures: int, retry_after: float | None) -> float:
    """Seconds an account rests after a failure of this cause."""
    if cause == "rate_limited":
        return min(retry_after if retry_after and retry_after > 0 else RATE_LIMIT_DEFAULT, RATE_LIMIT_CAP)
    if cause == "overloaded":
        return OVERLOAD_COOLDOWN
    return min(FAILURE_BASE * 2 ** max(consecutive_failures - 1, 0), FAILURE_CAP)


class Router:
    """Picks healthy accounts, best priority first and least loaded within a tier."""

    def __init__(self) -> None:
        self.pool = AccountPool([])
        self.health: dict[int, Health] = {}

    def _health(self, account: Account) -> Health:
        health = self.health.get(account.id)
        if health is None:
            health = self.health[account.id] = Health()
        return health

    def pick(self, model_id: str, aliases: tuple[str, ...], exclude: set[int]) -> Account | None:
        now = time.monotonic()
        best: Account | None = None
        best_rank: tuple[int, int] | None = None
        for account in self.pool.candidates(model_id, aliases):
            health = self._health(account)
            if account.id in exclude or health.cooldown_until > now:
                continue
            rank = (-account.priority, health.in_flight)
            if best_rank is None or rank < best_rank:
                best, best_rank = account, rank
        return best

    def seconds_until_recovery(self, model_id: str, aliases: tuple[str, ...]) -> float | None:
        """How long until the first cooling account serving this model is back; None if there is none."""
        now = time.monotonic()
        waits = [self._health(a).cooldown_until - now for a in self.pool.candidates(model_id, aliases)]
        waits = [wait for wait in waits if wait > 0]
        return min(waits) if waits else None

    def begin(self, account: Account) -> None:
        self._health(account).in_flight += 1

    def end(self, account: Account) -> None:
        self._health(account).in_flight -= 1

    def succeeded(self, account: Account) -> None:
        health = self._health(account)
        health.consecutive_failures = 0
        health.cause = None

    def failed(self, account: Account, cause: str, message: str, retry_after: float | None = None) -> float:
        """Cool the account down for this cause; returns the cooldown in seconds."""
        health = self._health(account)
        health.consecutive_failures += 1
        seconds = cooldown_for(cause, health.consecutive_failures, retry_after)
        health.cooldown_until = time.monotonic() + seconds
        health.cause, health.last_error = cause, message
        log.warning("account %s cooling down %.1fs: %s (%s)", account.name, seconds, cause, message)
        return seconds
