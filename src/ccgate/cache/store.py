"""Where cached answers live: an in-process LRU bounded in bytes (Redis when configured)."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError


class ResponseStore(Protocol):
    async def get(self, key: str) -> tuple[bytes, float] | None:
        """The stored value and its seconds to live, or None."""

    async def put(self, key: str, value: bytes, ttl: float) -> None: ...

    async def lead(self, key: str) -> bool:
        """Claim the right to fetch `key` upstream for every process (coalescing); False if taken."""

    async def follow(self, key: str, timeout: float) -> tuple[bytes, float] | None:
        """Wait for the leader's answer; None if it ends without one."""

    async def end_lead(self, key: str) -> None: ...


LEAD_TTL_MS = 120_000  # a leader that dies lets its followers go after this long
FOLLOW_POLL = 0.05


class MemoryResponseStore:
    """Least recently used entries go first once the values pass `max_bytes`; expired ones on sight."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    async def get(self, key: str) -> tuple[bytes, float] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        left = entry[0] - time.monotonic()
        if left <= 0:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry[1], left

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        if len(value) > self.max_bytes:
            return
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (time.monotonic() + ttl, value)
        self.size += len(value)
        while self.size > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        _, value = self._entries.pop(key)
        self.size -= len(value)

    async def lead(self, key: str) -> bool:
        return True  # one process: the pipeline's own futures coordinate its requests

    async def follow(self, key: str, timeout: float) -> tuple[bytes, float] | None:
        return None

    async def end_lead(self, key: str) -> None:
        return None


class RedisResponseStore:
    """Entries shared by every process; an unreachable Redis makes every lookup a miss, nothing worse."""

    def __init__(self, redis: Redis, prefix: str = "ccgate:cache:") -> None:
        self._redis = redis
        self._prefix = prefix

    async def get(self, key: str) -> tuple[bytes, float] | None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.get(self._prefix + key)
                pipe.pttl(self._prefix + key)
                value, ttl_ms = await pipe.execute()
        except RedisError:
            return None
        return (value, ttl_ms / 1000) if value is not None and ttl_ms > 0 else None

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        try:
            await self._redis.set(self._prefix + key, value, px=int(ttl * 1000))
        except RedisError:
            return

    async def lead(self, key: str) -> bool:
        try:
            return bool(await self._redis.set(self._prefix + "lead:" + key, 1, nx=True, px=LEAD_TTL_MS))
        except RedisError:
            return True

    async def follow(self, key: str, timeout: float) -> tuple[bytes, float] | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (entry := await self.get(key)) is not None:
                return entry
            try:
                if not await self._redis.exists(self._prefix + "lead:" + key):
                    return await self.get(key)
            except RedisError:
                return None
            await asyncio.sleep(FOLLOW_POLL)
        return None

    async def end_lead(self, key: str) -> None:
        try:
            await self._redis.delete(self._prefix + "lead:" + key)
        except RedisError:
            return
