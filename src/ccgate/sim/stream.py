"""Server-sent events for `"stream": true` (anthropic-api.md §3), paced and fault-injectable."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from ccgate.sim.faults import MIDSTREAM_KINDS, Fault
from ccgate.sim.generate import Reply
from ccgate.sim.tokens import chunk_text, count_text

TOKENS_PER_DELTA = 3
JSON_FRAGMENT_CHARS = 12
PING = b'event: ping\ndata: {"type": "ping"}\n\n'
OVERLOADED = (b'event: error\ndata: {"type": "error", '
              b'"error": {"type": "overloaded_error", "message": "Overloaded"}}\n\n')
DELTA_USAGE_FIELDS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


@dataclass(slots=True)
class Event:
    """One encoded SSE event; content deltas carry their output tokens for pacing."""

    data: bytes
    delta: bool = False
    tokens: int = 0


def sse(payload: dict[str, Any]) -> bytes:
    """`event: <type>` plus `data: <json>`, the event name always equal to data.type (§0)."""
    return b"event: " + payload["type"].encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def _delta(index: int, delta: dict[str, Any], tokens: int) -> Event:
    """A content_block_delta event."""
    return Event(sse({"type": "content_block_delta", "index": index, "delta": delta}), True, tokens)


def _block_events(index: int, block: dict[str, Any]) -> list[Event]:
    """content_block_start, its deltas and content_block_stop for one block."""
    kind = block["type"]
    if kind == "text":
        start: dict[str, Any] = {"type": "text", "text": ""}
        deltas = [_delta(index, {"type": "text_delta", "text": piece}, n)
                  for piece, n in chunk_text(block["text"], TOKENS_PER_DELTA)]
    elif kind == "thinking":
        start = {"type": "thinking", "thinking": "", "signature": ""}
        deltas = [_delta(index, {"type": "thinking_delta", "thinking": piece}, n)
                  for piece, n in chunk_text(block["thinking"], TOKENS_PER_DELTA)]
        deltas.append(_delta(index, {"type": "signature_delta", "signature": block["signature"]}, 0))
    else:
        start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
        text = orjson.dumps(block["input"]).decode()
        pieces = [""] + [text[i:i + JSON_FRAGMENT_CHARS] for i in range(0, len(text), JSON_FRAGMENT_CHARS)]
        deltas = [_delta(index, {"type": "input_json_delta", "partial_json": piece}, count_text(piece))
                  for piece in pieces]
    return [Event(sse({"type": "content_block_start", "index": index, "content_block": start})), *deltas,
            Event(sse({"type": "content_block_stop", "index": index}))]


def build_events(message: dict[str, Any], reply: Reply) -> list[Event]:
    """The whole stream: message_start, blocks (a ping after the first start), message_delta, message_stop."""
    usage = message["usage"]
    start = dict(message, content=[], stop_reason=None, stop_sequence=None, usage=dict(usage, output_tokens=1))
    events = [Event(sse({"type": "message_start", "message": start}))]
    for index, block in enumerate(reply.content):
        block_events = _block_events(index, block)
        if index == 0:
            block_events.insert(1, Event(PING))
        events += block_events
    if not reply.content:
        events.append(Event(PING))
    delta_usage = {field: usage[field] for field in DELTA_USAGE_FIELDS}
    delta_usage["output_tokens"] = reply.output_tokens
    events.append(Event(sse({"type": "message_delta", "delta": {"stop_reason": reply.stop_reason,
                                                                "stop_sequence": reply.stop_sequence,
                                                                "stop_details": None},
                             "usage": delta_usage})))
    events.append(Event(sse({"type": "message_stop"})))
    return events


async def send_events(request: web.Request, resp: web.StreamResponse, events: list[Event], ttft_ms: float,
                      tokens_per_sec: float, fault: Fault | None) -> bool:
    """Write events one by one with pacing; True if the stream ran to message_stop."""
    kind = fault.kind if fault is not None else None
    trigger = min(fault.after_events, len(events) - 1) if fault is not None and kind in MIDSTREAM_KINDS else -1
    first_content = True
    for number, event in enumerate(events):
        if number == trigger:
            if kind == "midstream-error":
                await resp.write(OVERLOADED)
                await resp.write_eof()
            elif request.transport is not None:
                request.transport.abort()
            return False
        if event.delta:
            delay = event.tokens / tokens_per_sec if tokens_per_sec else 0.0
            if first_content:
                delay += ttft_ms / 1000
                first_content = False
            if delay:
                await asyncio.sleep(delay)
        await resp.write(event.data)
    await resp.write_eof()
    return True
