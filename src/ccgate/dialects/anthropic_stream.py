"""Anthropic stream events to a whole message and back (anthropic-api.md §3), as pure functions."""

from __future__ import annotations

import copy

import orjson

from ccgate.dialects.wire import JsonObject

TEXT_CHUNK = 64  # characters per replayed text delta


def _delta_of(block: JsonObject) -> list[JsonObject]:
    """The deltas a replay sends for one finished block."""
    kind = block.get("type")
    if kind == "text":
        text = block.get("text", "")
        return [{"type": "text_delta", "text": text[i:i + TEXT_CHUNK]} for i in range(0, len(text), TEXT_CHUNK)]
    if kind in ("tool_use", "server_tool_use"):
        return [{"type": "input_json_delta", "partial_json": orjson.dumps(block.get("input", {})).decode()}]
    if kind == "thinking":
        return [{"type": "thinking_delta", "thinking": block.get("thinking", "")},
                {"type": "signature_delta", "signature": block.get("signature", "")}]
    return []


def _opening(block: JsonObject) -> JsonObject:
    """A block as content_block_start shows it: empty where deltas will fill it."""
    kind = block.get("type")
    if kind == "text":
        return {**block, "text": ""}
    if kind in ("tool_use", "server_tool_use"):
        return {**block, "input": {}}
    if kind == "thinking":
        return {**block, "thinking": "", "signature": ""}
    return block


def message_events(message: JsonObject) -> list[JsonObject]:
    """The event sequence that streams `message`: message_start, each block's start, deltas and
    stop, message_delta with the final usage, message_stop."""
    usage = message.get("usage") or {}
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {**usage, "output_tokens": min(usage.get("output_tokens", 1), 1)}}
    events: list[JsonObject] = [{"type": "message_start", "message": start}]
    for index, block in enumerate(message.get("content") or []):
        events.append({"type": "content_block_start", "index": index, "content_block": _opening(block)})
        events.extend({"type": "content_block_delta", "index": index, "delta": delta} for delta in _delta_of(block))
        events.append({"type": "content_block_stop", "index": index})
    events.append({"type": "message_delta",
                   "delta": {"stop_reason": message.get("stop_reason"), "stop_sequence": message.get("stop_sequence")},
                   "usage": usage})
    events.append({"type": "message_stop"})
    return events


def encode_events(events: list[JsonObject]) -> bytes:
    """Events as Anthropic SSE bytes, each with its `event:` line."""
    return b"".join(b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"
                    for event in events)


class MessageBuilder:
    """Rebuilds the whole message from stream events, the way the SDK's accumulator does."""

    def __init__(self) -> None:
        self.message: JsonObject | None = None
        self._partial_json: dict[int, str] = {}
        self.complete = False

    def feed(self, event: JsonObject) -> None:
        kind = event.get("type")
        if kind == "message_start":
            self.message = copy.deepcopy(event["message"])
            self.message["content"] = []
        elif self.message is None:
            return
        elif kind == "content_block_start":
            self.message["content"].append(copy.deepcopy(event["content_block"]))
        elif kind == "content_block_delta":
            self._apply(self.message["content"][event["index"]], event["index"], event["delta"])
        elif kind == "content_block_stop":
            index = event["index"]
            if index in self._partial_json:
                raw = self._partial_json.pop(index)
                self.message["content"][index]["input"] = orjson.loads(raw) if raw else {}
        elif kind == "message_delta":
            self.message.update(event.get("delta") or {})
            usage = self.message.setdefault("usage", {})
            usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
        elif kind == "message_stop":
            self.complete = True

    def _apply(self, block: JsonObject, index: int, delta: JsonObject) -> None:
        kind = delta.get("type")
        if kind == "text_delta":
            block["text"] = block.get("text", "") + delta["text"]
        elif kind == "input_json_delta":
            self._partial_json[index] = self._partial_json.get(index, "") + delta["partial_json"]
        elif kind == "thinking_delta":
            block["thinking"] = block.get("thinking", "") + delta["thinking"]
        elif kind == "signature_delta":
            block["signature"] = delta["signature"]
        elif kind == "citations_delta":
            block.setdefault("citations", []).append(delta["citation"])
