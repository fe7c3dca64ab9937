"""Throttles for the pages before sign-in: failed logins per account and per address, sign-ups per address.

Each throttle counts attempts under a name (`login-account:<email>`, `login-address:<ip>`,
`signup-address:<ip>`) in a window.  Past its allowance a name must wait, and the wait doubles with
each further attempt (backoff), up to the window.  The counts live in Redis when the gateway has
one, so every process and worker shares them; otherwise in this process's memory.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger("ccgate.web")
MAX_TRACKED = 10_000


@dataclass(frozen=True)
class Allowance:
    """`free` attempts per `window` seconds; then a wait of `first_wait`, doubling each attempt."""

    free: int
    window: float
    first_wait: float = 1.0

    def wait(self, attempts: int, last_at: float, now: float) -> float | None:
        """Seconds this name must still wait after `attempts` (the last at `last_at`); None if none."""
        if attempts < self.free:
            return None
        backoff = min(self.first_wait * 2 ** (attempts - self.free), self.window)
        remaining = last_at + backoff - now
        return remaining if remaining > 0 else None


class AttemptStore(Protocol):
    """Attempt counts per name that expire `window` seconds after the last attempt."""

    async def get(self, name: str) -> tuple[int, float]:
        """(attempts, time of the last one)."""

    async def add(self, name: str, now: float, window: float) -> None:
        """Count one attempt at `now`."""

    async def clear(self, name: str) -> None:
        """Forget the name's attempts."""


class MemoryAttempts:
    """This process's own counts (one process, or no Redis)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._counts: dict[str, tuple[int, float, float]] = {}  # name -> (attempts, last at, expires at)

    async def get(self, name: str) -> tuple[int, float]:
        attempts, last_at, expires_at = self._counts.get(name, (0, 0.0, 0.0))
        return (attempts, last_at) if expires_at > self._clock() else (0, 0.0)

    async def add(self, name: str, now: float, window: float) -> None:
        attempts, _ = await self.get(name)
        self._counts[name] = (attempts + 1, now, now + window)
        if len(self._counts) > MAX_TRACKED:
            horizon = self._clock()
            for stale in [key for key, (_, _, expires_at) in self._counts.items() if expires_at <= horizon]:
                del self._counts[stale]

    async def clear(self, name: str) -> None:
        self._counts.pop(name, None)


class RedisAttempts:
    """Counts shared by every process through Redis; a Redis error falls back to this process's memory."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._fallback = MemoryAttempts()

    async def get(self, name: str) -> tuple[int, float]:
        try:
            attempts, last_at = await self._redis.hmget(self._prefix + name, ["n", "at"])  # type: ignore[misc]
        except RedisError as error:
            log.warning("login throttle: Redis unavailable (%s); counting in memory", error)
            return await self._fallback.get(name)
        return int(attempts or 0), float(last_at or 0.0)

    async def add(self, name: str, now: float, window: float) -> None:
        key = self._prefix + name
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hincrby(key, "n", 1)
                pipe.hset(key, "at", repr(now))
                pipe.expire(key, max(1, round(window)))
                await pipe.execute()
        except RedisError:
            await self._fallback.add(name, now, window)

    async def clear(self, name: str) -> None:
        try:
            await self._redis.delete(self._prefix + name)
        except RedisError:
            await self._fallback.clear(name)


LOGIN_PER_ACCOUNT = Allowance(free=5, window=900.0, first_wait=30.0)
LOGIN_PER_ADDRESS = Allowance(free=20, window=900.0, first_wait=10.0)
SIGNUP_PER_ADDRESS = Allowance(free=5, window=3600.0, first_wait=60.0)


class LoginThrottle:
    """Failed logins per account and per address, and sign-ups per address."""

    def __init__(self, store: AttemptStore, clock: Callable[[], float] = time.time, *,
                 per_account: Allowance = LOGIN_PER_ACCOUNT, per_address: Allowance = LOGIN_PER_ADDRESS,
                 signups: Allowance = SIGNUP_PER_ADDRESS) -> None:
        self._store = store
        self._clock = clock
        self._rules = {"login-account": per_account, "login-address": per_address, "signup-address": signups}

    async def _wait(self, kind: str, who: str) -> float | None:
        attempts, last_at = await self._store.get(f"{kind}:{who}")
        return self._rules[kind].wait(attempts, last_at, self._clock())

    async def _count(self, kind: str, who: str) -> None:
        await self._store.add(f"{kind}:{who}", self._clock(), self._rules[kind].window)

    async def login_wait(self, email: str, address: str) -> float | None:
        """Seconds before this account may try again from this address; None if it may now."""
        waits = [await self._wait("login-account", _account(email)), await self._wait("login-address", address)]
        return max((wait for wait in waits if wait is not None), default=None)

    async def login_failed(self, email: str, address: str) -> None:
        await self._count("login-account", _account(email))
        await self._count("login-address", address)

    async def login_succeeded(self, email: str) -> None:
        """A right password clears the account's failures (not the address's: one valid account must not
        reset an address that guesses at others)."""
        await self._store.clear(f"login-account:{_account(email)}")

    async def signup_wait(self, address: str) -> float | None:
        """Seconds before this address may sign up again; None if it may now."""
        return await self._wait("signup-address", address)

    async def signup_attempted(self, address: str) -> None:
        await self._count("signup-address", address)


def _account(email: str) -> str:
    return email.strip().lower()
