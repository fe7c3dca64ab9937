"""What the router learns, shared through Redis: cooldowns published to every process, and which
account each session is stuck to."""

from __future__ import annotations

import asyncio
import logging
import time
from itertools import islice

import orjson
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

    trust = STICKY_TTL  # seconds an entry this process holds is good for

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
        self._pending: set[asyncio.Task] = set()
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


class HealthBroadcast:
    """Publishes this process's cooldowns and applies everyone else's to its router.  The subscription
    has a connection of its own, with no read timeout: it is silent for as long as accounts are healthy."""

    def __init__(self, redis: Redis, url: str, router, channel: str = "ccgate:health") -> None:
        self._redis = redis
        self._listener = Redis.from_url(url, socket_keepalive=True, health_check_interval=15)
        self._router = router
        self._channel = channel
        self._task: asyncio.Task | None = None

    def publish(self, account_id: int, until: float, cause: str, message: str) -> None:
        payload = orjson.dumps({"account": account_id, "until": until, "cause": cause, "message": message})
        asyncio.get_running_loop().create_task(self._send(payload))

    async def _send(self, payload: bytes) -> None:
        try:
            await self._redis.publish(self._channel, payload)
        except RedisError as error:
            log.warning("cooldown not shared: %s", error)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._listen())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._listener.aclose()

    async def _listen(self) -> None:
        """Apply published cooldowns; reconnect after Redis comes back."""
        while True:
            try:
                async with self._listener.pubsub() as pubsub:
                    await pubsub.subscribe(self._channel)
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            event = orjson.loads(message["data"])
                            self._router.learn(event["account"], event["until"], event["cause"], event["message"])
            except RedisError:
                await asyncio.sleep(1.0)
