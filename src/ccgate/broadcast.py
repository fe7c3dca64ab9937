"""Messages to every gateway process through Redis pub/sub: cooldowns one process learned, and
configuration changes an admin made (so every server reloads at once, not at its next check), each
confirmed by every server before the admin is told it is done."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger("ccgate.broadcast")

# Channel names, after the Redis prefix.
HEALTH = "health"  # a cooldown: [account id, until (epoch s), cause, message]
CONFIGURATION = "config"  # an admin change committed: reload now (the data: a token to confirm with)
ACKS = "config-ack:"  # + token: a set of the processes that loaded that change
CONFIRM_TIMEOUT = 5.0  # seconds an announcer waits for every process to confirm
CONFIRM_POLL = 0.02
ACK_TTL = 60


def redis_client(url: str) -> Redis:
    """A client for short commands (publishing, sticky sessions, the response cache): a second's
    timeout, so an unreachable Redis costs a request no more than that."""
    return Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)


async def publish(redis: Redis, channel: str, payload: bytes) -> None:
    """Publish; a message Redis cannot take is logged and lost (the database version check and each
    process's own failures cover for it)."""
    try:
        await redis.publish(channel, payload)
    except RedisError as error:
        log.warning("not broadcast on %s: %s", channel, error)


async def announce_change(redis: Redis, channel: str, acks: str, timeout: float = CONFIRM_TIMEOUT) -> tuple[int, int]:
    """Tell every server that an admin change was committed, and wait until each one that heard it
    confirmed it has loaded the change (`confirm_change`), for at most `timeout` seconds.  The servers
    that heard it are the subscribers PUBLISH counts: every serving process subscribes once.  Returns
    (confirmed, listening); a shortfall is logged as a warning naming both numbers."""
    token = uuid.uuid4().hex
    confirmed = listening = 0
    try:
        listening = await redis.publish(channel, token.encode())
        deadline = time.monotonic() + timeout
        while True:
            confirmed = await redis.scard(acks + token)  # type: ignore[misc]  # redis-py types sync and async at once
            if confirmed >= listening or time.monotonic() >= deadline:
                break
            await asyncio.sleep(CONFIRM_POLL)
    except RedisError as error:
        log.warning("the change was not announced (%s); servers load it within their reload interval", error)
        return confirmed, listening
    if confirmed < listening:
        log.warning("only %d of %d serving processes confirmed the change within %.0f s; the others load it "
                    "within their reload interval", confirmed, listening, timeout)
    return confirmed, listening


async def confirm_change(redis: Redis, acks: str, tokens: list[bytes], process: str) -> None:
    """Confirm, for each announcement heard, that this process has loaded the configuration it announced."""
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for token in tokens:
                pipe.sadd(acks + token.decode(), process)
                pipe.expire(acks + token.decode(), ACK_TTL)
            await pipe.execute()
    except RedisError as error:
        log.warning("could not confirm a configuration change: %s", error)


class Broadcast:
    """Publishes on channels and hands each message of the channels subscribed to its handler.  The
    subscription has a connection of its own, with no read timeout (it is silent for as long as
    nothing happens), and is made again after Redis comes back."""

    def __init__(self, redis: Redis, url: str) -> None:
        self._redis = redis
        self._listener = Redis.from_url(url, socket_keepalive=True, health_check_interval=15)
        self._handlers: dict[str, Callable[[bytes], None]] = {}
        self._sending: set[asyncio.Task] = set()
        self._task: asyncio.Task | None = None
        self.subscribed = asyncio.Event()  # set once the subscription is in place

    def on(self, channel: str, handler: Callable[[bytes], None]) -> None:
        """Call `handler` with the data of each message published on `channel` (once started)."""
        self._handlers[channel] = handler

    def publish(self, channel: str, payload: bytes) -> None:
        """Send without waiting."""
        task = asyncio.get_running_loop().create_task(publish(self._redis, channel, payload))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._listen(), name="broadcast")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._listener.aclose()

    async def _listen(self) -> None:
        while True:
            try:
                async with self._listener.pubsub() as pubsub:
                    await pubsub.subscribe(*self._handlers)
                    self.subscribed.set()
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            self._handle(message["channel"].decode(), message["data"])
            except RedisError:
                await asyncio.sleep(1.0)

    def _handle(self, channel: str, data: bytes) -> None:
        try:
            self._handlers[channel](data)
        except Exception:  # one bad message must not end the subscription
            log.exception("a message on %s could not be handled", channel)
