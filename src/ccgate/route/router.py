"""Choosing an upstream account for a request, and keeping score of each account's health.

Order of choice: the session's account (see route.shared) if it can serve; otherwise the best
priority tier, and within it the account with the least load per unit of weight,
scaled by the headroom its own rate-limit headers report.
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypedDict

from ccgate.obs.metrics import AccountGauge
from ccgate.route.headroom import Window, exhausted, parse_ratelimit, windows_as_dict
from ccgate.route.pool import Account, AccountPool

log = logging.getLogger("ccgate.route")

RATE_LIMIT_DEFAULT = 60.0
RATE_LIMIT_CAP = 30 * 60.0
OVERLOAD_COOLDOWN = 5.0
FAILURE_BASE = 2.0
FAILURE_CAP = 300.0
MIN_HEADROOM = 0.05


@dataclass(slots=True)
class Health:
    """What this process has learned about one account."""

    cooldown_until: float = 0.0  # epoch seconds
    cause: str | None = None
    consecutive_failures: int = 0
    last_error: str | None = None  # "cause: message", kept after the cooldown ends
    last_error_at: float | None = None
    in_flight: int = 0
    recent: deque[float] = field(default_factory=deque)  # start times of the last minute's requests
    headroom: float = 1.0  # the smallest remaining/limit fraction upstream reported
    # The last response headers that reported rate limits, parsed into windows only when asked for
    # (each reload interval), not on every answer (~15 us).
    ratelimit_headers: Mapping[str, str] | None = None
    _windows: dict[str, Window] = field(default_factory=dict)

    @property
    def windows(self) -> dict[str, Window]:
        """The last anthropic-ratelimit-* windows seen, by kind."""
        if self.ratelimit_headers is not None:
            self._windows, self.ratelimit_headers = parse_ratelimit(self.ratelimit_headers), None
        return self._windows

    def requests_last_minute(self, now: float) -> int:
        while self.recent and self.recent[0] <= now - 60:
            self.recent.popleft()
        return len(self.recent)


def cooldown_for(cause: str, consecutive_failures: int, retry_after: float | None) -> float:
    """Seconds an account rests after a failure of this cause."""
    if cause == "rate_limited":
        return min(retry_after if retry_after and retry_after > 0 else RATE_LIMIT_DEFAULT, RATE_LIMIT_CAP)
    if cause == "overloaded":
        return OVERLOAD_COOLDOWN
    return min(FAILURE_BASE * 2.0 ** max(consecutive_failures - 1, 0), FAILURE_CAP)


def headroom_of(headers: Mapping[str, str]) -> float | None:
    """The tightest remaining/limit fraction among the upstream's anthropic-ratelimit-* headers."""
    fractions: list[float] = []
    for kind in ("requests", "tokens", "input-tokens", "output-tokens"):
        try:
            limit = float(headers[f"anthropic-ratelimit-{kind}-limit"])
            remaining = float(headers[f"anthropic-ratelimit-{kind}-remaining"])
        except (KeyError, ValueError):
            continue
        if limit > 0:
            fractions.append(remaining / limit)
    return min(fractions) if fractions else None


def rate_limit_wait(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait on a 429: `retry-after`, else the soonest anthropic-ratelimit-*-reset."""
    try:
        return float(headers["retry-after"])
    except (KeyError, ValueError):
        pass
    now = time.time()
    waits: list[float] = []
    for name, value in headers.items():
        if name.lower().startswith("anthropic-ratelimit-") and name.lower().endswith("-reset"):
            try:
                waits.append(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() - now)
            except ValueError:
                continue
    positive = [wait for wait in waits if wait > 0]
    return min(positive) if positive else None


class AccountHealth(TypedDict):
    """One account's health as this process sees it: a row of account_status (process and time aside)."""

    account_id: int
    cooldown_until_ms: int | None
    cause: str | None
    last_error: str | None
    last_error_ms: int | None
    in_flight: int
    requests_last_minute: int
    ratelimit: dict[str, dict[str, int | None]] | None  # the upstream's rate-limit windows
    unroutable: str | None  # why no request can go to it right now


@dataclass(frozen=True, slots=True)
class Choice:
    account: Account
    moved: bool  # the session was stuck to another account the gateway could not use


class Router:
    """Picks accounts and learns from their answers (and from other processes' cooldowns)."""

    def __init__(self) -> None:
        self.pool = AccountPool([])
        self.health: dict[int, Health] = {}
        # Told of every cooldown this process decides (to share it with other processes).
        self.on_cooldown: Callable[[int, float, str, str], None] | None = None

    def set_pool(self, pool: AccountPool) -> None:
        """Take a reloaded pool; an account that (re)appears, such as one an operator enabled again,
        starts with a clean record."""
        known = {account.id for account in self.pool.accounts}
        for account in pool.accounts:
            if account.id not in known:
                self.health.pop(account.id, None)
        self.pool = pool

    def health_of(self, account: Account) -> Health:
        health = self.health.get(account.id)
        if health is None:
            health = self.health[account.id] = Health()
        return health

    def _usable(self, account: Account, now: float) -> bool:
        health = self.health_of(account)
        if health.cooldown_until > now:
            return False
        if account.concurrency and health.in_flight >= account.concurrency:
            return False
        return not (account.rpm and health.requests_last_minute(now) >= account.rpm)

    def pick(self, model_id: str, aliases: tuple[str, ...], exclude: set[int], stuck: int | None) -> Choice | None:
        """The session's account (`stuck`) if it can serve, else the best in the top usable tier."""
        now = time.time()
        serving = self.pool.candidates(model_id, aliases)
        candidates = [a for a in serving if a.id not in exclude and self._usable(a, now)]
        for account in candidates:
            if account.id == stuck:
                return Choice(account, moved=False)
        if not candidates:
            return None
        tier = max(account.priority for account in candidates)
        best = [a for a in candidates if a.priority == tier]
        scores = {a.id: (self.health_of(a).in_flight + 1) / (a.weight * max(self.health_of(a).headroom, MIN_HEADROOM))
                  for a in best}
        lowest = min(scores.values())
        account = random.choice([a for a in best if scores[a.id] == lowest])
        # Moved: the session's account serves this model (and holds its prompt cache) but could not take it.
        return Choice(account, moved=any(a.id == stuck for a in serving))

    def why_none(self, model_id: str, aliases: tuple[str, ...]) -> tuple[int, float | None]:
        """Why no account could take a request: 429 when serving accounts are only at their own
        limits, else 503; with the soonest wait."""
        now = time.time()
        accounts = self.pool.candidates(model_id, aliases)
        cooling = [self.health_of(a).cooldown_until - now for a in accounts if self.health_of(a).cooldown_until > now]
        if accounts and len(cooling) < len(accounts):
            return 429, 1.0
        return 503, min(cooling) if cooling else None

    # -- what the pipeline reports ---------------------------------------------------------------

    def begin(self, account: Account) -> None:
        health = self.health_of(account)
        health.in_flight += 1
        health.recent.append(time.time())

    def end(self, account: Account) -> None:
        self.health_of(account).in_flight -= 1

    def succeeded(self, account: Account, headers: Mapping[str, str]) -> None:
        health = self.health_of(account)
        health.consecutive_failures = 0
        health.cause = None
        self.learn_limits(account, headers)

    def learn_limits(self, account: Account, headers: Mapping[str, str]) -> None:
        """Keep the rate-limit windows an answer (a 200 or a 429) reported for the account."""
        if (headroom := headroom_of(headers)) is not None:
            health = self.health_of(account)
            health.headroom = headroom
            health.ratelimit_headers = headers

    def failed(self, account: Account, cause: str, message: str, retry_after: float | None = None) -> float:
        """Cool the account down for this cause; returns the cooldown in seconds."""
        health = self.health_of(account)
        health.consecutive_failures += 1
        seconds = cooldown_for(cause, health.consecutive_failures, retry_after)
        now = time.time()
        health.cooldown_until = now + seconds
        health.cause, health.last_error, health.last_error_at = cause, f"{cause}: {message}", now
        log.warning("account %s: %s, cooling down %.1fs (%s)", account.name, cause, seconds, message)
        if self.on_cooldown is not None:
            self.on_cooldown(account.id, health.cooldown_until, cause, message)
        return seconds

    def learn(self, account_id: int, until: float, cause: str, message: str) -> None:
        """A cooldown another process decided: kept if it ends later than what this one knows."""
        health = self.health.setdefault(account_id, Health())
        if until > health.cooldown_until:
            health.cooldown_until, health.cause = until, cause
            health.last_error, health.last_error_at = f"{cause}: {message}", time.time()

    def unroutable(self, account: Account, now: float | None = None) -> str | None:
        """Why a request cannot go to this (enabled) account right now, or None if it can."""
        now = time.time() if now is None else now
        health = self.health_of(account)
        if health.cooldown_until > now:
            return f"cooling: {health.cause or 'error'}"
        if account.concurrency and health.in_flight >= account.concurrency:
            return "at its concurrency limit"
        if account.rpm and health.requests_last_minute(now) >= account.rpm:
            return "at its requests-per-minute limit"
        return exhausted(health.windows, int(now * 1000))

    def gauges(self, disabled: tuple[str, ...] = ()) -> list[AccountGauge]:
        """Each account as the metrics show it; `disabled` names the accounts the pool leaves out."""
        now = time.time()
        gauges = []
        for account in self.pool.accounts:
            health = self.health_of(account)
            gauges.append(AccountGauge(
                account.name, "cooling" if health.cooldown_until > now else "healthy", health.in_flight,
                self.unroutable(account, now),
                {kind: (window.limit, window.remaining) for kind, window in health.windows.items()}))
        return gauges + [AccountGauge(name, "disabled", 0, "disabled", {}) for name in disabled]

    def snapshot(self) -> list[AccountHealth]:
        """Each account's health as rows of account_status, for operators and the CLI."""
        now = time.time()
        rows: list[AccountHealth] = []
        for account in self.pool.accounts:
            health = self.health_of(account)
            rows.append({
                "account_id": account.id,
                "cooldown_until_ms": int(health.cooldown_until * 1000) if health.cooldown_until > now else None,
                "cause": health.cause if health.cooldown_until > now else None,
                "last_error": health.last_error,
                "last_error_ms": int(health.last_error_at * 1000) if health.last_error_at else None,
                "in_flight": health.in_flight, "requests_last_minute": health.requests_last_minute(now),
                "ratelimit": windows_as_dict(health.windows) or None, "unroutable": self.unroutable(account, now),
            })
        return rows
