"""The stream relay's hooks for one call: usage capture, translation, settlement, clean-up."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Protocol

import orjson

from ccgate.billing.settle import capture_usage
from ccgate.dialects.anthropic_stream import MessageBuilder
from ccgate.dialects.sse import event_data
from ccgate.gate.admission import Ticket
from ccgate.pipeline.caching import ResponseCache
from ccgate.pipeline.context import Call
from ccgate.relay.forward import Attempt, Forwarder
from ccgate.state.base import AdmissionState

_background: set[asyncio.Task[Any]] = set()


def in_background(coroutine: Coroutine[Any, Any, Any]) -> None:
    """Run a coroutine to its end without anyone waiting for it (kept referenced until then)."""
    task = asyncio.get_running_loop().create_task(coroutine)
    _background.add(task)
    task.add_done_callback(_background.discard)


class Owner(Protocol):
    """What a stream needs of the pipeline that admitted it."""

    state: AdmissionState
    cache: ResponseCache
    forwarder: Forwarder

    async def settle_quietly(self, call: Call, ticket: Ticket) -> bool: ...

    def finished(self, call: Call) -> None: ...


class CallStream:
    """Implements relay.stream.StreamHooks for a call admitted with `ticket`."""

    __slots__ = ("pipeline", "call", "attempt", "ticket", "builder")

    def __init__(self, pipeline: Owner, call: Call, attempt: Attempt, ticket: Ticket) -> None:
        self.pipeline = pipeline
        self.call = call
        self.attempt = attempt
        self.ticket = ticket
        # Only a cacheable answer is rebuilt whole as it streams by.
        self.builder = MessageBuilder() if call.cache_key is not None else None

    def observe(self, blocks: list[bytes]) -> bool:
        over, error_type = capture_usage(self.call.usage, blocks)
        if error_type is not None:
            self.call.error_type = error_type
        if self.builder is not None:
            for block in blocks:
                if data := event_data(block):
                    self.builder.feed(orjson.loads(data))
        return over

    def translate(self, chunk: bytes, blocks: list[bytes]) -> bytes:
        return self.call.dialect.stream_chunk(chunk, blocks)

    async def complete(self) -> bytes | None:
        call, pipeline = self.call, self.pipeline
        if not await pipeline.settle_quietly(call, self.ticket):
            return call.dialect.stream_error("api_error", "usage could not be recorded; answer withheld")
        await pipeline.state.caught_up()
        builder = self.builder
        if builder is not None and builder.complete and builder.message is not None and call.error_type is None:
            await pipeline.cache.remember(call, builder.message)
        return None

    async def broken(self, pending: bool) -> bytes:
        self.call.error_type = "upstream_disconnected"
        await self.pipeline.settle_quietly(self.call, self.ticket)
        return (b"\n\n" if pending else b"") + self.call.dialect.stream_error(
            "api_error", "the upstream connection ended before the answer was complete")

    def first_byte(self) -> None:
        if self.call.ttft_ms is None:
            self.call.ttft_ms = self.call.elapsed_ms()

    def end(self) -> bytes:
        return self.call.dialect.stream_end()

    def closed(self, settled: bool) -> None:
        """Give the account back and bill what upstream reported so far, if nothing was billed yet."""
        self.pipeline.forwarder.router.end(self.attempt.account)
        self.pipeline.cache.end_lead(self.call)
        if settled:
            self.pipeline.finished(self.call)
        else:
            self.call.error_type = "client_disconnected"
            in_background(self._settle_abandoned())

    async def _settle_abandoned(self) -> None:
        await self.pipeline.settle_quietly(self.call, self.ticket)
        self.pipeline.finished(self.call)
