"""Relaying an upstream stream to the client as a pure ASGI response."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import anyio
import orjson

from ccgate.dialects.anthropic_stream import MessageBuilder
from ccgate.relay.client import UPSTREAM_ERRORS
from ccgate.relay.sse import EventSplitter, event_data

if TYPE_CHECKING:
    from ccgate.call import Call
    from ccgate.gate.admission import Ticket
    from ccgate.http.pipeline import Attempt, Pipeline

log = logging.getLogger("ccgate.stream")


class StreamRelay:
    """Writes each upstream chunk as it arrives, holds the last one until the usage row is
    committed, and, if the client hangs up, cancels the upstream request at once.

    Clean-up lives outside the chunk generator, so it runs even when the client leaves
    before the first chunk was asked for.
    """

    def __init__(self, pipeline: Pipeline, call: Call, attempt: Attempt, ticket: Ticket) -> None:
        self.pipeline = pipeline
        self.call = call
        self.attempt = attempt
        self.ticket = ticket
        self.settled = False
        headers = call.id_headers() | ticket.headers()
        headers["content-type"] = "text/event-stream; charset=utf-8"
        headers["cache-control"] = "no-cache"
        self.raw_headers = [(name.encode(), value.encode()) for name, value in headers.items()]

    async def __call__(self, scope, receive, send) -> None:
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
            self._finish()

    async def _send_all(self, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        async for chunk in self._chunks():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _chunks(self) -> AsyncIterator[bytes]:
        call, dialect, pipeline = self.call, self.call.dialect, self.pipeline
        splitter = EventSplitter()
        builder = MessageBuilder() if call.cache_key is not None else None
        finished = False
        content, idle = self.attempt.response.content, pipeline.gw.upstream.idle_timeout
        try:
            while True:
                async with asyncio.timeout(idle):  # an upstream silent this long is gone
                    chunk = await content.readany()
                if not chunk:
                    break
                blocks = splitter.feed(chunk)
                finished = pipeline.observe(call, blocks) or finished
                if builder is not None:
                    for block in blocks:
                        if data := event_data(block):
                            builder.feed(orjson.loads(data))
                out = dialect.stream_chunk(chunk, blocks)
                if finished and not self.settled:
                    self.settled = True
                    if not await pipeline.settle_quietly(call, self.ticket):
                        yield dialect.stream_error("api_error", "usage could not be recorded; answer withheld")
                        return
                    await pipeline.gw.state.caught_up()
                    if builder is not None and builder.complete and call.error_type is None:
                        await pipeline.remember(call, builder.message)
                if out:
                    if call.ttft_ms is None:
                        call.ttft_ms = call.elapsed_ms()
                    yield out
        except UPSTREAM_ERRORS as exc:
            log.warning("upstream stream of %s broke: %s", call.request_id, type(exc).__name__)
        if not finished:
            call.error_type = "upstream_disconnected"
            self.settled = True
            await pipeline.settle_quietly(call, self.ticket)
            yield (b"\n\n" if splitter.pending else b"") + dialect.stream_error(
                "api_error", "the upstream connection ended before the answer was complete")
        if end := dialect.stream_end():
            yield end

    def _finish(self) -> None:
        """Close upstream (which cancels it if still running) and bill what it reported so far."""
        self.attempt.response.close()
        self.pipeline.gw.router.end(self.attempt.account)
        self.pipeline.end_lead(self.call)
        if not self.settled:
            self.settled = True
            self.call.error_type = "client_disconnected"
            self.pipeline.in_background(self.pipeline.settle_quietly(self.call, self.ticket))
