"""Anthropic Messages response -> OpenAI Response object (the Responses API)."""

from __future__ import annotations

from typing import Any

import orjson

from ccgate.dialects.responses_request import ENCRYPTED_REASONING, encode_reasoning, tool_namespaces

Json = dict[str, Any]

# Anthropic stop_reason -> the reason a Response is incomplete; every other stop_reason completes it.
INCOMPLETE_REASONS: dict[str, str] = {
    "max_tokens": "max_output_tokens",
    "model_context_window_exceeded": "max_output_tokens",
    "refusal": "content_filter",
}
_ECHOED_FIELDS = ("instructions", "max_output_tokens", "previous_response_id", "prompt_cache_key",
                  "safety_identifier", "user")


def response_frame(body: Json, *, response_id: str, created_at: int) -> Json:
    """Everything a Response says about its request, as the Response object echoes it."""
    reasoning = body.get("reasoning") or {}
    frame = {
        "id": response_id, "object": "response", "created_at": created_at, "status": "in_progress",
        "background": False, "error": None, "incomplete_details": None,
        "model": body.get("model"), "output": [],
        "metadata": body.get("metadata") or {},
        "parallel_tool_calls": body.get("parallel_tool_calls", True) is not False,
        "temperature": body.get("temperature"), "top_p": body.get("top_p"),
        "tool_choice": body.get("tool_choice") or "auto", "tools": body.get("tools") or [],
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "text": body.get("text") or {"format": {"type": "text"}},
        "truncation": body.get("truncation") or "disabled",
        "store": body.get("store", True) is not False,
        "usage": None,
    }
    frame |= {field: body.get(field) for field in _ECHOED_FIELDS}
    frame["_include_encrypted_reasoning"] = ENCRYPTED_REASONING in (body.get("include") or [])
    frame["_namespaces"] = tool_namespaces(body)
    return frame


def public(frame: Json) -> Json:
    """The frame without the gateway's own notes (the keys starting with `_`)."""
    return {key: value for key, value in frame.items() if not key.startswith("_")}


def responses_usage(usage: Json) -> Json:
    """Responses usage, where input_tokens counts cached and cache-written input too."""
    cached = usage.get("cache_read_input_tokens") or 0
    written = usage.get("cache_creation_input_tokens") or 0
    input_tokens = (usage.get("input_tokens") or 0) + written + cached
    output = usage.get("output_tokens") or 0
    reasoning = (usage.get("output_tokens_details") or {}).get("thinking_tokens") or 0
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": input_tokens + output,
    }


def _suffix(response_id: str) -> str:
    return response_id.removeprefix("resp_")


def message_item_id(response_id: str, index: int) -> str:
    return f"msg_{_suffix(response_id)}_{index}"


def reasoning_item_id(response_id: str, index: int) -> str:
    return f"rs_{_suffix(response_id)}_{index}"


def _annotations(block: Json) -> list[Json]:
    """Web search citations as url_citation annotations over the whole text part."""
    end = len(block.get("text") or "")
    return [{"type": "url_citation", "url": citation["url"], "title": citation.get("title") or "",
             "start_index": 0, "end_index": end}
            for citation in block.get("citations") or [] if citation.get("url")]


def output_text_part(block: Json) -> Json:
    return {"type": "output_text", "text": block.get("text") or "", "annotations": _annotations(block), "logprobs": []}


def message_item(item_id: str, block: Json, status: str = "completed") -> Json:
    return {"type": "message", "id": item_id, "role": "assistant", "status": status,
            "content": [output_text_part(block)]}


def function_call_item(block: Json, arguments: str, frame: Json, status: str = "completed") -> Json:
    """A function call; a tool of a namespace is called by its own name with its `namespace`."""
    item = {"type": "function_call", "id": f"fc_{block['id']}", "call_id": block["id"], "name": block["name"],
            "arguments": arguments, "status": status}
    if (namespaced := frame["_namespaces"].get(block["name"])) is not None:
        item["namespace"], item["name"] = namespaced
    return item


def canonical_arguments(tool_input: object) -> str:
    return orjson.dumps(tool_input if tool_input is not None else {}).decode()


def reasoning_item(item_id: str, block: Json, include_encrypted: bool) -> Json:
    """A reasoning item: the thinking as its summary, the whole block as encrypted_content when asked for."""
    thinking = block.get("thinking") or ""
    item: Json = {"type": "reasoning", "id": item_id,
                  "summary": [{"type": "summary_text", "text": thinking}] if thinking else []}
    if include_encrypted:
        item["encrypted_content"] = encode_reasoning(block)
    return item


def web_search_item(block: Json, status: str = "completed") -> Json:
    query = (block.get("input") or {}).get("query") or ""
    return {"type": "web_search_call", "id": f"ws_{block['id']}", "status": status,
            "action": {"type": "search", "query": query}}


def output_item(index: int, block: Json, frame: Json) -> Json | None:
    """The output item of one finished Anthropic block; None for blocks a Response does not show
    (web search results, which the answer's citations carry)."""
    kind, response_id = block.get("type"), frame["id"]
    if kind == "text":
        return message_item(message_item_id(response_id, index), block)
    if kind == "tool_use":
        return function_call_item(block, canonical_arguments(block.get("input")), frame)
    if kind in ("thinking", "redacted_thinking"):
        return reasoning_item(reasoning_item_id(response_id, index), block, frame["_include_encrypted_reasoning"])
    if kind == "server_tool_use" and block.get("name") == "web_search":
        return web_search_item(block)
    return None


def finish(frame: Json, model: str, output: list[Json], stop_reason: str | None, usage: Json) -> Json:
    """The finished Response: status, incomplete_details, output and usage on the frame."""
    reason = INCOMPLETE_REASONS.get(stop_reason or "")
    return public(frame) | {
        "model": model, "output": output, "status": "incomplete" if reason else "completed",
        "incomplete_details": {"reason": reason} if reason else None,
        "usage": responses_usage(usage),
    }


def to_response(message: Json, frame: Json) -> Json:
    """The Response of a complete, non-streamed Anthropic message."""
    items = (output_item(index, block, frame) for index, block in enumerate(message.get("content") or []))
    return finish(frame, message.get("model") or frame["model"], [item for item in items if item is not None],
                  message.get("stop_reason"), message.get("usage") or {})


def in_progress(frame: Json, model: str) -> Json:
    """The Response as response.created and response.in_progress show it."""
    return public(frame) | {"model": model}


def failed(frame: Json, model: str, output: list[Json], error_type: str, message: str) -> Json:
    """The Response of an answer that failed with an Anthropic error type."""
    code = "rate_limit_exceeded" if error_type == "rate_limit_error" else "server_error"
    error = {"code": code, "message": message}
    return in_progress(frame, model) | {"status": "failed", "output": output, "error": error}
