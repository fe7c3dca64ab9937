"""Lua script runs sent to Redis in pipelines: whatever gathers while one batch is on the wire goes in
the next, so the requests of a busy moment share one round trip, and runs apply in the order queued."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ccgate.state.base import StateUnavailable

log = logging.getLogger("ccgate.state.redis")

UNREACHABLE = (RedisConnectionError, RedisTimeoutError)


@contextmanager
def reachable() -> Iterator[None]:
    """Turn the client's connection failures into StateUnavailable."""
    try:
        yield
    except UNREACHABLE as exc:
        raise StateUnavailable(f"Redis is unreachable: {exc}") from exc


async def cancel(task: asyncio.Task[None] | None) -> None:
    """Cancel a background task and wait for it to end."""
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class Run(NamedTuple):
    """One script run; `reply` is None when nobody waits for its result."""

    script: AsyncScript
    keys: list[str]
    args: list[Any]
    reply: asyncio.Future[Any] | None


class ScriptBatches:
    """Queues script runs and sends them, by one task, in pipelines of EVALSHA.

    A pipeline of redis-py's Script objects asks SCRIPT EXISTS before every batch, a second round
    trip; this sends EVALSHA alone and loads the scripts only when Redis says it lacks them (after a
    restart).
    """

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._queue: asyncio.Queue[Run] = asyncio.Queue()
        self._failed = 0  # runs nobody waited for that could not be applied, since the last flush
        self._queued = self._done = 0  # runs queued and runs done (applied or failed), ever
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def run(self, script: AsyncScript, keys: list[str], args: list[Any]) -> Any:
        """The script's reply, from the next batch; StateUnavailable when Redis cannot be reached."""
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._put(Run(script, keys, args, reply))
        return await reply

    def schedule(self, script: AsyncScript, keys: list[str], args: list[Any]) -> None:
        """Queue a run nobody waits for; a failure is counted and raised by the next `flush`."""
        self._put(Run(script, keys, args, None))

    async def caught_up(self) -> None:
        """Return once every run queued before this call is done (later ones are not waited for, so a
        steady stream of requests cannot starve the caller)."""
        target = self._queued
        if self._done >= target:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, waiter))
        await waiter

    async def flush(self) -> None:
        """Wait until every queued run is done; raise if any scheduled one could not be applied."""
        await self._queue.join()
        failed, self._failed = self._failed, 0
        if failed:
            raise StateUnavailable(f"{failed} scheduled script runs could not be applied")

    async def close(self) -> None:
        """Stop sending (after a flush, nothing is lost)."""
        await cancel(self._sender)
        self._sender = None

    def _put(self, run: Run) -> None:
        self._queued += 1
        self._queue.put_nowait(run)
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_forever(), name="redis-script-batches")

    async def _send_forever(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                replies = await self._send(batch)
            except Exception as error:  # the connection failed: so did every run of the batch
                replies = [error] * len(batch)
            lost = [reply for run, reply in zip(batch, replies, strict=True) if not self._answer(run, reply)]
            if lost:
                self._failed += len(lost)
                log.error("%d scheduled script runs could not be applied to Redis: %s", len(lost), lost[0])
            for _ in batch:
                self._queue.task_done()
            self._done += len(batch)
            self._wake_waiters()

    async def _send(self, batch: list[Run]) -> list[Any]:
        replies = await self._pipeline(batch)
        missing = [index for index, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:  # Redis restarted or flushed its scripts: they did not run, so run them again
            for script in {batch[index].script for index in missing}:
                await self._redis.script_load(script.script)
            again = await self._pipeline([batch[index] for index in missing])
            for index, reply in zip(missing, again, strict=True):
                replies[index] = reply
        return replies

    async def _pipeline(self, batch: list[Run]) -> list[Any]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for run in batch:
                pipe.evalsha(run.script.sha, len(run.keys), *run.keys, *run.args)
            return await pipe.execute(raise_on_error=False)

    @staticmethod
    def _answer(run: Run, reply: Any) -> bool:
        """Hand the reply to whoever waits for it; False for a failed run nobody waits for."""
        if isinstance(reply, UNREACHABLE):
            reply = StateUnavailable(f"Redis is unreachable: {reply}")
        if run.reply is None:
            return not isinstance(reply, Exception)
        if not run.reply.done():
            if isinstance(reply, Exception):
                run.reply.set_exception(reply)
            else:
                run.reply.set_result(reply)
        return True

    def _wake_waiters(self) -> None:
        still = []
        for target, waiter in self._waiters:
            if self._done >= target:
                if not waiter.done():
                    waiter.set_result(None)
            else:
                still.append((target, waiter))
        self._waiters = still
