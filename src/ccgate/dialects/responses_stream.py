"""Anthropic Messages stream events -> OpenAI Responses stream events (SSE with `event:` lines)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from ccgate.dialects.errors import OPENAI_ERROR_TYPES
from ccgate.dialects.responses_response import (
    canonical_arguments,
    failed,
    finish,
    function_call_item,
    in_progress,
    message_item,
    message_item_id,
    output_text_part,
    reasoning_item,
    reasoning_item_id,
    web_search_item,
)

Json = dict[str, Any]


def encode(event: Json) -> bytes:
    """One SSE event named by its type."""
    name: str = event["type"]
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


@dataclass(slots=True)
class _Open:
    """A content block being streamed, and the output item it became."""

    block: Json
    output_index: int
    item_id: str
    partial_json: str = ""
    summary_open: bool = False
    citations: list[Json] = field(default_factory=list)


class ResponseEventTranslator:
    """Translates one Anthropic stream, event by event, into Responses events; one instance per stream.

    `response` holds the finished Response once `message_stop` has been translated (or the failed one after an
    error).
    """

    def __init__(self, frame: Json) -> None:
        self._frame = frame
        self._sequence = 0
        self._model = frame.get("model") or ""
        self._usage: Json = {}
        self._stop_reason: str | None = None
        self._open: dict[int, _Open] = {}
        self._items: list[Json] = []
        self.response: Json | None = None

    def feed(self, event: Json) -> list[Json]:
        """The Responses events for one parsed Anthropic event."""
        match event.get("type"):
            case "message_start":
                return self._start(event["message"])
            case "content_block_start":
                return self._block_start(event["index"], event["content_block"])
            case "content_block_delta":
                return self._block_delta(event["index"], event["delta"])
            case "content_block_stop":
                return self._block_stop(event["index"])
            case "message_delta":
                self._usage.update((k, v) for k, v in (event.get("usage") or {}).items() if v is not None)
                self._stop_reason = (event.get("delta") or {}).get("stop_reason") or self._stop_reason
                return []
            case "message_stop":
                return self._stop()
            case "error":
                error = event.get("error") or {}
                return self.fail(error.get("type", "api_error"), error.get("message", ""))
            case _:
                return []

    def fail(self, error_type: str, message: str) -> list[Json]:
        """An `error` event for an Anthropic error type, then `response.failed` with the output so far."""
        self.response = failed(self._frame, self._model, self._items, error_type, message)
        return [self._event("error", code=OPENAI_ERROR_TYPES.get(error_type, error_type), message=message, param=None),
                self._event("response.failed", response=self.response)]

    def _event(self, kind: str, **fields: object) -> Json:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event

    def _start(self, message: Json) -> list[Json]:
        self._model = message.get("model") or self._model
        self._usage = dict(message.get("usage") or {})
        response = in_progress(self._frame, self._model)
        return [self._event("response.created", response=response),
                self._event("response.in_progress", response=response)]

    def _added(self, index: int, block: Json, item_id: str, item: Json) -> list[Json]:
        self._open[index] = _Open(dict(block), len(self._items) + len(self._open), item_id)
        return [self._event("response.output_item.added", output_index=self._open[index].output_index, item=item)]

    def _block_start(self, index: int, block: Json) -> list[Json]:
        kind, response_id = block.get("type"), self._frame["id"]
        if kind == "text":
            item_id = message_item_id(response_id, index)
            events = self._added(index, block, item_id, {**message_item(item_id, block, "in_progress"), "content": []})
            return events + [self._event("response.content_part.added", item_id=item_id,
                                         output_index=self._open[index].output_index, content_index=0,
                                         part=output_text_part({"text": ""}))]
        if kind == "tool_use":
            item = function_call_item(block, "", self._frame, "in_progress")
            return self._added(index, block, item["id"], item)
        if kind in ("thinking", "redacted_thinking"):
            item_id = reasoning_item_id(response_id, index)
            return self._added(index, block, item_id, {"type": "reasoning", "id": item_id, "summary": []})
        if kind == "server_tool_use" and block.get("name") == "web_search":
            item = web_search_item(block, "in_progress")
            return self._added(index, block, item["id"], item)
        return []

    def _block_delta(self, index: int, delta: Json) -> list[Json]:
        if (state := self._open.get(index)) is None:
            return []
        kind, place = delta.get("type"), {"item_id": state.item_id, "output_index": state.output_index}
        if kind == "text_delta" and delta.get("text"):
            state.block["text"] = state.block.get("text", "") + delta["text"]
            return [self._event("response.output_text.delta", **place, content_index=0, delta=delta["text"],
                                logprobs=[])]
        if kind == "citations_delta":
            state.citations.append(delta["citation"])
        elif kind == "input_json_delta" and delta.get("partial_json"):
            state.partial_json += delta["partial_json"]
            if state.block["type"] == "tool_use":
                return [self._event("response.function_call_arguments.delta", **place, delta=delta["partial_json"])]
        elif kind == "thinking_delta" and delta.get("thinking"):
            state.block["thinking"] = state.block.get("thinking", "") + delta["thinking"]
            events = [] if state.summary_open else [self._event(
                "response.reasoning_summary_part.added", **place, summary_index=0,
                part={"type": "summary_text", "text": ""})]
            state.summary_open = True
            return events + [self._event("response.reasoning_summary_text.delta", **place, summary_index=0,
                                         delta=delta["thinking"])]
        elif kind == "signature_delta":
            state.block["signature"] = delta["signature"]
        return []

    def _block_stop(self, index: int) -> list[Json]:
        if (state := self._open.pop(index, None)) is None:
            return []
        block, place = state.block, {"item_id": state.item_id, "output_index": state.output_index}
        events: list[Json] = []
        if state.citations:
            block["citations"] = state.citations
        if block["type"] in ("tool_use", "server_tool_use"):
            block["input"] = orjson.loads(state.partial_json) if state.partial_json else {}
        if block["type"] == "text":
            part = output_text_part(block)
            item = message_item(state.item_id, block)
            events += [self._event("response.output_text.done", **place, content_index=0, text=part["text"],
                                   logprobs=[]),
                       self._event("response.content_part.done", **place, content_index=0, part=part)]
        elif block["type"] == "tool_use":
            item = function_call_item(block, canonical_arguments(block["input"]), self._frame)
            events.append(self._event("response.function_call_arguments.done", **place, name=block["name"],
                                      arguments=item["arguments"]))
        elif block["type"] == "server_tool_use":
            item = web_search_item(block)
        else:
            item = reasoning_item(state.item_id, block, self._frame["_include_encrypted_reasoning"])
            if state.summary_open:
                summary = item["summary"][0]
                events += [self._event("response.reasoning_summary_text.done", **place, summary_index=0,
                                       text=summary["text"]),
                           self._event("response.reasoning_summary_part.done", **place, summary_index=0,
                                       part=summary)]
        self._items.append(item)
        return events + [self._event("response.output_item.done", output_index=state.output_index, item=item)]

    def _stop(self) -> list[Json]:
        self.response = finish(self._frame, self._model, self._items, self._stop_reason, self._usage)
        kind = "response.completed" if self.response["status"] == "completed" else "response.incomplete"
        return [self._event(kind, response=self.response)]
