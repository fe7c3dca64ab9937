"""Which account each session is stuck to, in one process or shared through Redis."""

from __future__ import annotations

import asyncio
import logging
import time
from itertools import islice

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger("ccgate.route")

STICKY_TTL = 3600
LOCAL_TTL = 5.0  # how long this process trusts what it read of a session's account
RENEW_AFTER = 60.0  # how long an hour-long Redis entry this process wrote goes without renewal
MAX_SESSIONS = 100_000  # entries a process keeps before it drops the oldest


def learn(entries: dict[str, tuple[int, float]], session: str, account_id: int, now: float) -> None:
    """Record a session's account, keeping `entries` in the order learned and dropping the oldest
    quarter once there are too many."""
    entries.pop(session, None)
    entries[session] = (account_id, now)
    if len(entries) > MAX_SESSIONS:
        for stale in list(islice(entries, MAX_SESSIONS // 4)):
            del entries[stale]


class MemorySticky:
    """Session -> account for one process."""

    trust: float = STICKY_TTL  # seconds an entry this process holds is good for

    def __init__(self) -> None:
        self._entries: dict[str, tuple[int, float]] = {}  # session -> account, when it was learned

    async def get(self, session: str) -> int | None:
        entry = self._entries.get(session)
        return entry[0] if entry and time.time() - entry[1] < self.trust else None

    def put(self, session: str, account_id: int) -> None:
        self._remember(session, account_id)

    def _remember(self, session: str, account_id: int) -> None:
        learn(self._entries, session, account_id, time.time())


class RedisSticky(MemorySticky):
    """Session -> account for every process: Redis holds it for an hour, renewed on use; this process
    trusts what it read for a few seconds, so a conversation's bursts cost no round trip, and tells
    Redis only what changed or needs renewing, so its steady requests cost no write."""

    trust = LOCAL_TTL

    def __init__(self, redis: Redis, prefix: str = "ccgate:sticky:") -> None:
        super().__init__()
        self._redis = redis
        self._prefix = prefix
        self._pending: set[asyncio.Task[None]] = set()
        self._told: dict[str, tuple[int, float]] = {}  # session -> account, when Redis was last told

    async def get(self, session: str) -> int | None:
        if (known := await super().get(session)) is not None:
            return known
        try:
            value = await self._redis.get(self._prefix + session)
        except RedisError:
            return None
        if value is None:
            return None
        self._remember(session, int(value))
        return int(value)

    def put(self, session: str, account_id: int) -> None:
        self._remember(session, account_id)
        now = time.time()
        told = self._told.get(session)
        if told is not None and told[0] == account_id and now - told[1] < RENEW_AFTER:
            return
        learn(self._told, session, account_id, now)
        task = asyncio.get_running_loop().create_task(self._store(session, account_id))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _store(self, session: str, account_id: int) -> None:
        try:
            await self._redis.set(self._prefix + session, account_id, ex=STICKY_TTL)
        except RedisError as error:
            log.warning("sticky session not shared: %s", error)
