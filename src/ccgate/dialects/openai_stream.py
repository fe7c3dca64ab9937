"""Anthropic Messages stream events -> OpenAI `chat.completion.chunk` SSE (anthropic-api.md §3, §8.3)."""

from __future__ import annotations

import orjson

from ccgate.dialects.errors import openai_error_object
from ccgate.dialects.openai_response import completion_id, finish_reason, openai_usage
from ccgate.dialects.wire import JsonObject

DONE = b"data: [DONE]\n\n"
KEEP_ALIVE = b": keep-alive\n\n"


def encode(chunk: JsonObject) -> bytes:
    """One data-only SSE event carrying `chunk`."""
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


class ChunkTranslator:
    """Translates one Anthropic stream, event by event, into OpenAI chunks; one instance per stream.

    The caller sends `DONE` after the chunks of `message_stop`; thinking, signatures and pings
    are dropped.
    """

    def __init__(self, *, created: int, include_usage: bool) -> None:
        self._created = created
        self._include_usage = include_usage
        self._id = ""
        self._model = ""
        self._usage: JsonObject = {}
        self._tool_calls: dict[int, int] = {}  # Anthropic block index -> OpenAI tool call index

    def feed(self, event: JsonObject) -> list[JsonObject]:
        """The chunks for one parsed Anthropic event (its `type` names the event)."""
        match event.get("type"):
            case "message_start":
                return self._start(event["message"])
            case "content_block_start":
                return self._block_start(event["index"], event["content_block"])
            case "content_block_delta":
                return self._block_delta(event["index"], event["delta"])
            case "message_delta":
                return self._message_delta(event)
            case "message_stop":
                return [self._envelope([], openai_usage(self._usage))] if self._include_usage else []
            case "error":
                error = event.get("error") or {}
                return [openai_error_object(error.get("type", "api_error"), error.get("message", ""))]
            case _:
                return []

    def _start(self, message: JsonObject) -> list[JsonObject]:
        self._id = completion_id(message["id"])
        self._model = message.get("model", "")
        self._usage = dict(message.get("usage") or {})
        return [self._chunk({"role": "assistant", "content": ""})]

    def _block_start(self, index: int, block: JsonObject) -> list[JsonObject]:
        if block.get("type") != "tool_use":
            return []
        ordinal = self._tool_calls[index] = len(self._tool_calls)
        call = {"index": ordinal, "id": block["id"], "type": "function",
                "function": {"name": block["name"], "arguments": ""}}
        return [self._chunk({"tool_calls": [call]})]

    def _block_delta(self, index: int, delta: JsonObject) -> list[JsonObject]:
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return [self._chunk({"content": delta["text"]})]
        if kind == "input_json_delta" and delta.get("partial_json") and index in self._tool_calls:
            call = {"index": self._tool_calls[index], "function": {"arguments": delta["partial_json"]}}
            return [self._chunk({"tool_calls": [call]})]
        return []

    def _message_delta(self, event: JsonObject) -> list[JsonObject]:
        """Takes the cumulative usage (non-null fields replace, §3.4) and emits the finish chunk."""
        self._usage.update((k, v) for k, v in (event.get("usage") or {}).items() if v is not None)
        reason = finish_reason((event.get("delta") or {}).get("stop_reason"))
        return [self._chunk({}, reason)] if reason else []

    def _chunk(self, delta: JsonObject, reason: str | None = None) -> JsonObject:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
        return self._envelope([choice], None)

    def _envelope(self, choices: list[JsonObject], usage: JsonObject | None) -> JsonObject:
        """A chunk; `usage` is carried (null on all but the last chunk) only when the client asked for it."""
        chunk = {"id": self._id, "object": "chat.completion.chunk", "created": self._created,
                 "model": self._model, "choices": choices}
        if self._include_usage:
            chunk["usage"] = usage
        return chunk
