"""Anthropic Messages response -> OpenAI `chat.completion` (anthropic-api.md §8.3)."""

from __future__ import annotations

import orjson

from ccgate.dialects.wire import JsonObject

# Anthropic stop_reason -> OpenAI finish_reason; any other non-null stop_reason maps to "stop".
FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def completion_id(message_id: str) -> str:
    """The OpenAI completion id of an Anthropic message id."""
    return f"chatcmpl-{message_id}"


def finish_reason(stop_reason: str | None) -> str | None:
    """The OpenAI finish_reason of an Anthropic stop_reason (None while still unknown)."""
    return FINISH_REASONS.get(stop_reason, "stop") if stop_reason else None


def openai_usage(anthropic_usage: JsonObject) -> JsonObject:
    """OpenAI usage, where prompt_tokens counts cached input too (§8.3)."""
    cached = anthropic_usage.get("cache_read_input_tokens") or 0
    prompt = (anthropic_usage.get("input_tokens") or 0) + (anthropic_usage.get("cache_creation_input_tokens") or 0)
    prompt += cached
    completion = anthropic_usage.get("output_tokens") or 0
    reasoning = (anthropic_usage.get("output_tokens_details") or {}).get("thinking_tokens") or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }


def _tool_call(block: JsonObject) -> JsonObject:
    """An OpenAI tool call of a complete Anthropic tool_use block."""
    arguments = orjson.dumps(block.get("input") or {}).decode()
    return {"id": block["id"], "type": "function", "function": {"name": block["name"], "arguments": arguments}}


def _message(content: list[JsonObject]) -> JsonObject:
    """The OpenAI assistant message of Anthropic content blocks; thinking and server-tool blocks are dropped."""
    text = "".join(block["text"] for block in content if block.get("type") == "text")
    message: JsonObject = {"role": "assistant", "content": text or None, "refusal": None}
    calls = [_tool_call(block) for block in content if block.get("type") == "tool_use"]
    if calls:
        message["tool_calls"] = calls
    return message


def to_openai_response(message: JsonObject, *, created: int) -> JsonObject:
    """The `chat.completion` of a complete, non-streamed Anthropic message."""
    return {
        "id": completion_id(message["id"]),
        "object": "chat.completion",
        "created": created,
        "model": message["model"],
        "choices": [
            {
                "index": 0,
                "message": _message(message.get("content") or []),
                "logprobs": None,
                "finish_reason": finish_reason(message.get("stop_reason")),
            }
        ],
        "usage": openai_usage(message.get("usage") or {}),
    }
