"""OpenAI Responses request -> Anthropic Messages request.

Every field is either carried over, honoured by the gateway itself (`metadata`, `store`,
`previous_response_id`), or refused with a TranslationError naming it: nothing is dropped silently.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from ccgate.dialects.errors import TranslationError
from ccgate.dialects.openai_request import (
    _DATA_URL,
    JSON_OBJECT_INSTRUCTION,
    REASONING_EFFORTS,
    _expect,
    _fail,
    _optional,
    _required,
    _sampling,
    _system,
    _tool_input,
    append_turn,
    apply_thinking,
    tooling,
)

Json = dict[str, Any]

# reasoning.effort -> (thinking budget, adaptive effort); "none" turns thinking off
EFFORTS: dict[str, tuple[int, str]] = {**REASONING_EFFORTS, "xhigh": (32768, "xhigh")}
WEB_SEARCH_TOOLS = frozenset({"web_search", "web_search_preview", "web_search_2025_08_26",
                              "web_search_preview_2025_03_11"})
WEB_SEARCH_MAX_USES = {"low": 1, "medium": 5, "high": 10}
ENCRYPTED_REASONING = "reasoning.encrypted_content"
NAMESPACE_SEPARATOR = "__"  # a namespaced function tool `ns`.`name` is the Anthropic tool `ns__name`

# Fields the gateway carries over or honours itself; any other field is refused by name.
KNOWN_FIELDS = frozenset({
    "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "max_output_tokens",
    "temperature", "top_p", "reasoning", "text", "metadata", "user", "safety_identifier", "store", "include",
    "truncation", "previous_response_id", "stream", "stream_options", "prompt_cache_key", "service_tier",
    "top_logprobs", "background", "client_metadata",
})
# The values of known fields that mean "nothing to do"; other values are refused.
NEUTRAL_VALUES: dict[str, tuple[object, ...]] = {
    "truncation": ("disabled",), "service_tier": ("auto", "default"), "top_logprobs": (0,), "background": (False,),
}
_TOOL_CHOICE_KEYWORDS = {"auto": "auto", "none": "none", "required": "any"}


def _check_fields(body: Json) -> None:
    for field in body:
        if field not in KNOWN_FIELDS:
            raise _fail(field, "not supported by this gateway")
    for field, neutral in NEUTRAL_VALUES.items():
        if body.get(field) is not None and body[field] not in neutral:
            raise _fail(field, f"only {', '.join(repr(value) for value in neutral)} is supported")


# --- content parts -------------------------------------------------------------------------------


def _image(part: Json, param: str) -> Json:
    if part.get("file_id") is not None:
        raise _fail(f"{param}.file_id", "file ids are not supported; send image_url")
    url = _required(part, "image_url", str, f"{param}.image_url")
    if match := _DATA_URL.fullmatch(url):
        return {"type": "image", "source": {"type": "base64", "media_type": match[1], "data": match[2]}}
    if url.lower().startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise _fail(f"{param}.image_url", "expected a base64 data URL or an http(s) URL")


def _file(part: Json, param: str) -> Json:
    """A document block: PDF or plain text as file_data, or a PDF by file_url."""
    if part.get("file_id") is not None:
        raise _fail(f"{param}.file_id", "file ids are not supported; send file_data")
    if (url := _optional(part, "file_url", str, f"{param}.file_url")) is not None:
        return {"type": "document", "source": {"type": "url", "url": url}}
    data = _required(part, "file_data", str, f"{param}.file_data")
    match = _DATA_URL.fullmatch(data)
    if match is None:
        raise _fail(f"{param}.file_data", "expected a base64 data URL")
    media_type, payload = match[1], match[2]
    if media_type == "application/pdf":
        source: Json = {"type": "base64", "media_type": media_type, "data": payload}
    elif media_type.startswith("text/"):
        try:
            text = base64.b64decode(payload, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise _fail(f"{param}.file_data", "not base64-encoded UTF-8 text") from None
        source = {"type": "text", "media_type": "text/plain", "data": text}
    else:
        raise _fail(f"{param}.file_data", f"unsupported file type {media_type!r} (PDF or text only)")
    block = {"type": "document", "source": source}
    if filename := _optional(part, "filename", str, f"{param}.filename"):
        block["title"] = filename
    return block


def _text(part: Json, param: str) -> Json | None:
    text = _required(part, "text", str, f"{param}.text")
    return {"type": "text", "text": text} if text else None


def _refusal(part: Json, param: str) -> Json | None:
    refusal = _required(part, "refusal", str, f"{param}.refusal")
    return {"type": "text", "text": refusal} if refusal else None


_PARTS = {"input_text": _text, "output_text": _text, "refusal": _refusal, "input_image": _image, "input_file": _file}
_USER_PARTS = frozenset({"input_text", "input_image", "input_file"})
_ASSISTANT_PARTS = frozenset({"output_text", "refusal", "input_text"})
_SYSTEM_PARTS = frozenset({"input_text"})


def _blocks(content: object, param: str, allowed: frozenset[str]) -> list[Json]:
    """The Anthropic blocks of a message's content: a string, or a list of parts of `allowed` types."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for i, part in enumerate(_expect(content, list, param)):
        part_param = f"{param}[{i}]"
        kind = _required(_expect(part, dict, part_param), "type", str, f"{part_param}.type")
        if kind not in allowed:
            raise _fail(f"{part_param}.type", f"unsupported content part type {kind!r} here")
        if (block := _PARTS[kind](part, part_param)) is not None:
            blocks.append(block)
    return blocks


# --- input items ---------------------------------------------------------------------------------


def encode_reasoning(block: Json) -> str:
    """A thinking or redacted_thinking block as the opaque `encrypted_content` of a reasoning item."""
    return base64.b64encode(orjson.dumps(block)).decode()


def _decode_reasoning(item: Json, param: str) -> Json | None:
    """The thinking block a reasoning item carries; None when the client kept only its summary."""
    encrypted = _optional(item, "encrypted_content", str, f"{param}.encrypted_content")
    if encrypted is None:
        return None
    try:
        block = orjson.loads(base64.b64decode(encrypted, validate=True))
    except (binascii.Error, orjson.JSONDecodeError):
        block = None
    if not isinstance(block, dict) or block.get("type") not in ("thinking", "redacted_thinking"):
        raise _fail(f"{param}.encrypted_content", "not reasoning this gateway produced")
    return block


class _Turns:
    """Hoisted system blocks and merged user/assistant turns, built one input item at a time."""

    def __init__(self, history: list[Json]) -> None:
        self.system: list[Json] = []
        self.turns: list[Json] = [{"role": turn["role"], "content": list(turn["content"])} for turn in history]

    def add(self, value: object, param: str) -> None:
        item: Json = _expect(value, dict, param)
        kind = item.get("type", "message")
        if kind == "message":
            self._message(item, param)
        elif kind == "function_call":
            call_id = _required(item, "call_id", str, f"{param}.call_id")
            arguments = _required(item, "arguments", str, f"{param}.arguments")
            name = _tool_name(_optional(item, "namespace", str, f"{param}.namespace"),
                              _required(item, "name", str, f"{param}.name"))
            self._append("assistant", [{"type": "tool_use", "id": call_id, "name": name,
                                        "input": _tool_input(arguments, f"{param}.arguments")}])
        elif kind == "function_call_output":
            call_id = _required(item, "call_id", str, f"{param}.call_id")
            output = item.get("output")
            result: Json = {"type": "tool_result", "tool_use_id": call_id}
            if blocks := _blocks(output if output is not None else "", f"{param}.output", _USER_PARTS):
                result["content"] = blocks
            self._append("user", [result])
        elif kind == "reasoning":
            if (block := _decode_reasoning(item, param)) is not None:
                self._append("assistant", [block])
        elif kind != "web_search_call":  # a record of a search whose findings the answer after it carries
            raise _fail(f"{param}.type", f"unsupported input item type {kind!r}")

    def _message(self, item: Json, param: str) -> None:
        role = _required(item, "role", str, f"{param}.role")
        content = item.get("content")
        if role in ("system", "developer"):
            self.system += _blocks(content, f"{param}.content", _SYSTEM_PARTS)
        elif role == "user":
            self._append("user", _blocks(content, f"{param}.content", _USER_PARTS))
        elif role == "assistant":
            self._append("assistant", _blocks(content, f"{param}.content", _ASSISTANT_PARTS))
        else:
            raise _fail(f"{param}.role", f"unknown role {role!r}")

    def _append(self, role: str, blocks: list[Json]) -> None:
        append_turn(self.turns, role, blocks)


def input_items(body: Json) -> list[Json]:
    """`input` as a list of items (a string is one user message)."""
    value = body.get("input")
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}]
    return list(_expect(value, list, "input")) if value is not None else []


def _turns(body: Json, history: list[Json]) -> _Turns:
    turns = _Turns(history)
    if instructions := _optional(body, "instructions", str):
        turns.system.append({"type": "text", "text": instructions})
    for index, item in enumerate(input_items(body)):
        turns.add(item, f"input[{index}]")
    if not turns.turns or turns.turns[-1]["role"] != "user":
        raise _fail("input", "the conversation must end with user input")
    return turns


# --- tools ---------------------------------------------------------------------------------------


def _web_search_tool(tool: Json, param: str) -> Json:
    """Claude's web search server tool for OpenAI's web_search tool."""
    result: Json = {"type": "web_search_20250305", "name": "web_search"}
    if _optional(tool, "external_web_access", bool, f"{param}.external_web_access") is False:
        raise _fail(f"{param}.external_web_access", "Claude's web search is live only; allow external access")
    size = _optional(tool, "search_context_size", str, f"{param}.search_context_size") or "medium"
    if size not in WEB_SEARCH_MAX_USES:
        raise _fail(f"{param}.search_context_size", "expected 'low', 'medium' or 'high'")
    result["max_uses"] = WEB_SEARCH_MAX_USES[size]
    filters = _optional(tool, "filters", dict, f"{param}.filters") or {}
    if domains := _optional(filters, "allowed_domains", list, f"{param}.filters.allowed_domains"):
        result["allowed_domains"] = domains
    if (location := _optional(tool, "user_location", dict, f"{param}.user_location")) is not None:
        fields = {key: location[key] for key in ("city", "country", "region", "timezone") if location.get(key)}
        result["user_location"] = {"type": "approximate", **fields}
    return result


def _tool_name(namespace: str | None, name: str) -> str:
    return f"{namespace}{NAMESPACE_SEPARATOR}{name}" if namespace else name


def tool_namespaces(body: Json) -> dict[str, list[str]]:
    """Anthropic tool name -> [namespace, name] for the function tools of the request's namespaces."""
    tools: list[Any] = body["tools"] if isinstance(body.get("tools"), list) else []
    return {_tool_name(tool["name"], inner["name"]): [tool["name"], inner["name"]]
            for tool in tools if isinstance(tool, dict) and tool.get("type") == "namespace"
            for inner in tool.get("tools") or [] if isinstance(inner, dict)}


def _tools_of(value: object, param: str) -> list[Json]:
    """The Anthropic tools of one tool: a namespace gives one per function inside it."""
    tool: Json = _expect(value, dict, param)
    kind = _required(tool, "type", str, f"{param}.type")
    if kind in WEB_SEARCH_TOOLS:
        return [_web_search_tool(tool, param)]
    if kind == "namespace":
        namespace = _required(tool, "name", str, f"{param}.name")
        about = _optional(tool, "description", str, f"{param}.description")
        inner = _required(tool, "tools", list, f"{param}.tools")
        return [_function_tool(item, f"{param}.tools[{i}]", namespace, about) for i, item in enumerate(inner)]
    return [_function_tool(tool, param, None, None)]


def _function_tool(value: object, param: str, namespace: str | None, about: str | None) -> Json:
    tool: Json = _expect(value, dict, param)
    kind = _required(tool, "type", str, f"{param}.type")
    if kind != "function":
        raise _fail(f"{param}.type", f"tool type {kind!r} is not supported (function, namespace and web_search are)")
    result: Json = {"name": _tool_name(namespace, _required(tool, "name", str, f"{param}.name"))}
    description = _optional(tool, "description", str, f"{param}.description")
    if text := "\n\n".join(part for part in (about, description) if part):
        result["description"] = text
    parameters = _optional(tool, "parameters", dict, f"{param}.parameters")
    result["input_schema"] = parameters if parameters is not None else {"type": "object", "properties": {}}
    if _optional(tool, "strict", bool, f"{param}.strict"):
        result["strict"] = True
    return result


def _tool_choice(body: Json) -> Json | None:
    choice = body.get("tool_choice")
    if choice is None:
        return None
    if isinstance(choice, str):
        if choice not in _TOOL_CHOICE_KEYWORDS:
            raise _fail("tool_choice", "expected 'auto', 'none', 'required' or a named tool")
        return {"type": _TOOL_CHOICE_KEYWORDS[choice]}
    kind = _required(_expect(choice, dict, "tool_choice"), "type", str, "tool_choice.type")
    if kind == "function":
        name = _required(choice, "name", str, "tool_choice.name")
        return {"type": "tool", "name": _tool_name(_optional(choice, "namespace", str, "tool_choice.namespace"), name)}
    if kind in WEB_SEARCH_TOOLS:
        return {"type": "tool", "name": "web_search"}
    raise _fail("tool_choice.type", f"tool choice {kind!r} is not supported")


def _tooling(body: Json) -> Json:
    """`tools` and `tool_choice`, with `parallel_tool_calls: false` as disable_parallel_tool_use."""
    tools = [anthropic_tool for i, tool in enumerate(_optional(body, "tools", list) or [])
             for anthropic_tool in _tools_of(tool, f"tools[{i}]")]
    return tooling(body, tools, _tool_choice(body))


# --- text.format, reasoning and the rest ---------------------------------------------------------


def _text_format(body: Json) -> tuple[list[Json], Json]:
    """Extra system blocks, and request fields, that carry `text.format`."""
    text = _optional(body, "text", dict) or {}
    if _optional(text, "verbosity", str, "text.verbosity") not in (None, "medium"):
        raise _fail("text.verbosity", "only 'medium' is supported")
    spec = _optional(text, "format", dict, "text.format")
    kind = "text" if spec is None else _required(spec, "type", str, "text.format.type")
    if kind == "text":
        return [], {}
    if kind == "json_object":
        return [{"type": "text", "text": JSON_OBJECT_INSTRUCTION}], {}
    if kind == "json_schema":
        assert spec is not None  # kind came from it
        schema = _required(spec, "schema", dict, "text.format.schema")
        return [], {"output_config": {"format": {"type": "json_schema", "schema": schema}}}
    raise _fail("text.format.type", f"unsupported type {kind!r}")


def _reasoning(request: Json, body: Json) -> None:
    reasoning = _optional(body, "reasoning", dict) or {}
    if _optional(reasoning, "summary", str, "reasoning.summary") not in (None, "auto", "concise", "detailed"):
        raise _fail("reasoning.summary", "expected 'auto', 'concise' or 'detailed'")
    effort = _optional(reasoning, "effort", str, "reasoning.effort")
    if effort in (None, "none"):
        return
    if effort not in EFFORTS:
        raise _fail("reasoning.effort", f"expected one of 'none', {', '.join(repr(e) for e in EFFORTS)}")
    budget, adaptive_effort = EFFORTS[effort]
    apply_thinking(request, budget, adaptive_effort, "reasoning.effort")


def _include(body: Json) -> None:
    for i, value in enumerate(_optional(body, "include", list) or []):
        if value != ENCRYPTED_REASONING:
            raise _fail(f"include[{i}]", f"only {ENCRYPTED_REASONING!r} is supported")


def _max_tokens(body: Json, default: int) -> int:
    value = _optional(body, "max_output_tokens", int)
    if value is not None and value < 1:
        raise _fail("max_output_tokens", "must be at least 1")
    return value if value is not None else default


def _metadata(body: Json) -> Json:
    """`safety_identifier` (or the older `user`) as Anthropic's opaque user id; `metadata` stays with the
    stored response."""
    metadata = _optional(body, "metadata", dict) or {}
    for key, value in metadata.items():
        _expect(value, str, f"metadata.{key}")
    user = _optional(body, "safety_identifier", str) or _optional(body, "user", str)
    return {"metadata": {"user_id": user}} if user else {}


def check_options(body: Json) -> None:
    """The fields the gateway honours itself are of the right type."""
    _optional(body, "store", bool)
    _optional(body, "stream", bool)
    _optional(body, "previous_response_id", str)
    _optional(body, "stream_options", dict)
    _optional(body, "prompt_cache_key", str)


def to_anthropic_request(body: Any, *, default_max_tokens: int, history: list[Json] | None = None) -> Json:
    """The Anthropic Messages request of a Responses request; `history` holds the turns of the response
    named by previous_response_id.  Raises TranslationError for a field it cannot honour."""
    if not isinstance(body, dict):
        raise TranslationError("body: expected a JSON object", None)
    _check_fields(body)
    model = _required(body, "model", str)
    if not model:
        raise _fail("model", "must not be empty")
    check_options(body)
    _include(body)
    turns = _turns(body, history or [])
    format_system, format_fields = _text_format(body)
    request: Json = {"model": model, "max_tokens": _max_tokens(body, default_max_tokens), "messages": turns.turns}
    request |= _system(turns.system + format_system)
    request |= _sampling(body) | _metadata(body) | _tooling(body) | format_fields
    if body.get("prompt_cache_key") is not None:  # a hint to cache the prompt: automatic prompt caching
        request["cache_control"] = {"type": "ephemeral"}
    _reasoning(request, body)
    if body.get("stream"):
        request["stream"] = True
    return request
