"""The stream relay's hooks for one call: usage capture, the live floor, translation, settlement, clean-up."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any, Protocol

import orjson

from ccgate.billing.meter import UNLIMITED, StreamMeter, budget_tokens, output_allowance
from ccgate.billing.prices import cost
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
    """Implements relay.stream.StreamHooks for a call admitted with `ticket`.

    The live floor: once `message_start` tells the input, `allowance` is how many output tokens the
    ticket's hold and token reservation cover; output is counted as it streams (billing.meter), and
    `needs_more` turns true when the next read could pass the allowance (`margin`: the most output one read
    has brought so far).  The relay then awaits `extend`, which grows the hold or, refused, ends the answer
    while it is still within its hold (docs/billing.md).  Per chunk this costs a few integer ops."""

    __slots__ = ("pipeline", "call", "attempt", "ticket", "builder", "meter", "metered", "allowance",
                 "margin", "needs_more", "settled")

    def __init__(self, pipeline: Owner, call: Call, attempt: Attempt, ticket: Ticket) -> None:
        self.pipeline = pipeline
        self.call = call
        self.attempt = attempt
        self.ticket = ticket
        # Only a cacheable answer is rebuilt whole as it streams by.
        self.builder = MessageBuilder() if call.cache_key is not None else None
        self.meter = StreamMeter(call.usage)
        self.metered = ticket.limits.hold_micro is not None or bool(ticket.limits.token_budget)
        self.allowance = UNLIMITED
        self.margin = 0  # the most output tokens one read has brought
        self.needs_more = False
        self.settled = False  # settled by `extend` (the floor ended the answer)

    def observe(self, blocks: list[bytes]) -> bool:
        meter = self.meter
        before = meter.output_tokens
        over, error_type, reported = meter.feed(blocks)
        if error_type is not None:
            self.call.error_type = error_type
        if self.metered:
            produced = meter.output_tokens
            self.margin = max(self.margin, produced - before)
            if reported:
                self.allowance = self._allowance()
            self.needs_more = produced + self.margin > self.allowance
        if self.builder is not None:
            for block in blocks:
                if data := event_data(block):
                    self.builder.feed(orjson.loads(data))
        return over

    def _allowance(self) -> int:
        call, limits = self.call, self.ticket.limits
        assert call.model is not None
        return output_allowance(call.model, call.flags, call.usage, limits.hold_micro,
                                limits.reserve_tokens if limits.token_budget else None)

    async def extend(self) -> bytes | None:
        """The next read could run past what the ticket holds: grow the hold to cover it, or end the answer
        at the floor, billing what was generated.  None when extended; else the event that ends the stream."""
        call, limits = self.call, self.ticket.limits
        assert call.model is not None
        produced = self.meter.output_tokens
        ahead = produced + self.margin
        usage = call.usage
        needed = cost(call.model, call.flags, replace(usage, output_tokens=ahead)).total_micro
        if await self.ticket.extend(needed, budget_tokens(usage, ahead)):
            self.allowance = self._allowance()
            self.needs_more = ahead > self.allowance
            return None
        self.settled = True
        credit = limits.hold_micro is not None and needed > limits.hold_micro
        self.meter.bill_produced()
        call.error_type = "credit_exhausted" if credit else "token_budget_exhausted"
        await self.pipeline.settle_quietly(call, self.ticket)
        if credit:
            return call.dialect.stream_error("billing_error", (
                f"Credit exhausted: the answer was stopped after {produced} output tokens at this account's "
                "overdraft limit; what was generated is billed. Top up to continue."))
        return call.dialect.stream_error("rate_limit_error", (
            f"Token budget exhausted: the answer was stopped after {produced} output tokens; what was "
            "generated counts against the budget."))

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
        self.meter.bill_produced()
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
        if settled or self.settled:
            self.pipeline.finished(self.call)
        else:
            self.call.error_type = "client_disconnected"
            in_background(self._settle_abandoned())

    async def _settle_abandoned(self) -> None:
        """Bill what was generated until the upstream request was cancelled (the local count when the
        upstream had not reported more)."""
        self.meter.bill_produced()
        await self.pipeline.settle_quietly(self.call, self.ticket)
        self.pipeline.finished(self.call)
