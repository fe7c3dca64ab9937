"""Relaying an upstream stream to the client as a pure ASGI response."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Protocol

import aiohttp
import anyio
from starlette.types import Receive, Scope, Send

from ccgate.dialects.sse import EventSplitter
from ccgate.relay.client import UPSTREAM_ERRORS

log = logging.getLogger("ccgate.stream")


class StreamHooks(Protocol):
    """What the relay asks of the request it carries; it knows nothing else of it."""

    needs_more: bool  # the answer has run past what the request holds: `extend` must be awaited

    def observe(self, blocks: list[bytes]) -> bool:
        """Take in the whole events of a chunk; True once the answer is over."""
        ...

    def translate(self, chunk: bytes, blocks: list[bytes]) -> bytes:
        """The chunk in the client's dialect."""
        ...

    async def extend(self) -> bytes | None:
        """Grow what the request holds; None when done, else the event that ends the stream (settled)."""
        ...

    async def complete(self) -> bytes | None:
        """The answer is over: settle it. None when settled; else an error event to end with."""
        ...

    async def broken(self, pending: bool) -> bytes:
        """The upstream ended early: settle what it reported; the error event to end with."""
        ...

    def first_byte(self) -> None:
        """The first bytes go to the client now."""
        ...

    def end(self) -> bytes:
        """The dialect's end-of-stream marker."""
        ...

    def closed(self, settled: bool) -> None:
        """The relay is over (finished, failed or abandoned); settle now if it was not."""
        ...


class StreamRelay:
    """Writes each upstream chunk as it arrives, holds the last one until the usage row is
    committed, and, if the client hangs up, cancels the upstream request at once.

    Clean-up lives outside the chunk generator, so it runs even when the client leaves
    before the first chunk was asked for.
    """

    def __init__(self, response: aiohttp.ClientResponse, hooks: StreamHooks, headers: dict[str, str], *,
                 idle_timeout: float, request_id: str) -> None:
        self.response = response
        self.hooks = hooks
        self.idle_timeout = idle_timeout
        self.request_id = request_id
        self.settled = False
        headers = headers | {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
        self.raw_headers = [(name.encode(), value.encode()) for name, value in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:

                async def relay() -> None:
                    await self._send_all(send)
                    group.cancel_scope.cancel()

                group.start_soon(relay)
                while (await receive())["type"] != "http.disconnect":
                    pass
                group.cancel_scope.cancel()
        finally:
            self.response.close()  # cancels the upstream request if it is still running
            self.hooks.closed(self.settled)
            self.settled = True

    async def _send_all(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        async for chunk in self._chunks():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _chunks(self) -> AsyncIterator[bytes]:
        hooks, splitter = self.hooks, EventSplitter()
        finished, started = False, False
        content = self.response.content
        try:
            while True:
                async with asyncio.timeout(self.idle_timeout):  # an upstream silent this long is gone
                    chunk = await content.readany()
                if not chunk:
                    break
                blocks = splitter.feed(chunk)
                finished = hooks.observe(blocks) or finished
                out = hooks.translate(chunk, blocks)
                if finished and not self.settled:
                    self.settled = True
                    if (refusal := await hooks.complete()) is not None:
                        yield refusal
                        return
                if out:
                    if not started:
                        started = True
                        hooks.first_byte()
                    yield out
                if hooks.needs_more and not finished and (ending := await hooks.extend()) is not None:
                    self.settled = finished = True
                    self.response.close()  # cancels the upstream request: nothing more is generated
                    yield ending
                    break
        except UPSTREAM_ERRORS as exc:
            log.warning("upstream stream of %s broke: %s", self.request_id, type(exc).__name__)
        if not finished:
            self.settled = True
            yield await hooks.broken(bool(splitter.pending))
        if end := hooks.end():
            yield end
