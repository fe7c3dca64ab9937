"""OpenAI Chat Completions request -> Anthropic Messages request (anthropic-api.md §8.2)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar, cast

import orjson

from ccgate.dialects.errors import TranslationError
from ccgate.dialects.models import reference_by_name
from ccgate.dialects.wire import JsonObject

JSON_OBJECT_INSTRUCTION = (
    "Respond with a single valid JSON object and nothing else: no prose before or after it, no code fences."
)

# reasoning_effort -> (thinking budget for `enabled` thinking, output_config.effort for adaptive-only models)
REASONING_EFFORTS: dict[str, tuple[int, str]] = {
    "minimal": (1024, "low"),
    "low": (2048, "low"),
    "medium": (8192, "medium"),
    "high": (16384, "high"),
}

T = TypeVar("T")
PartTypes = tuple[frozenset[str], frozenset[str]]
"""Per role: the content part types translated, and those silently dropped (§8.1)."""

_REFERENCE_MODELS = reference_by_name()
_TOOL_CHOICE_KEYWORDS: dict[str, str] = {"auto": "auto", "none": "none", "required": "any"}
_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+);base64,(.+)", re.DOTALL)
_TYPE_NAMES: dict[type, str] = {
    str: "a string", int: "an integer", float: "a number", bool: "a boolean", list: "an array", dict: "an object",
}


def _fail(param: str, reason: str) -> TranslationError:
    return TranslationError(f"{param}: {reason}", param)


def _expect(value: object, kind: type[T], param: str) -> T:
    """`value` if it is a `kind` (float accepts integers; only bool accepts booleans)."""
    accepted = (int, float) if kind is float else kind
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, accepted):
        raise _fail(param, f"expected {_TYPE_NAMES[kind]}")
    return cast(T, value)


def _optional(obj: JsonObject, key: str, kind: type[T], param: str | None = None) -> T | None:
    """`obj[key]` checked against `kind`, or None when absent or null."""
    value = obj.get(key)
    return None if value is None else _expect(value, kind, param or key)


def _required(obj: JsonObject, key: str, kind: type[T], param: str | None = None) -> T:
    """`obj[key]` checked against `kind`; absent or null is an error."""
    if obj.get(key) is None:
        raise _fail(param or key, "field required")
    return _expect(obj[key], kind, param or key)


# --- content parts -------------------------------------------------------------------------------


def _text_block(part: JsonObject, param: str) -> JsonObject | None:
    text = _required(part, "text", str, f"{param}.text")
    return {"type": "text", "text": text} if text else None


def _image_block(part: JsonObject, param: str) -> JsonObject:
    """A base64 block for a data URL, a url block for an http(s) URL (never fetched)."""
    url = _required(_required(part, "image_url", dict, f"{param}.image_url"), "url", str, f"{param}.image_url.url")
    if match := _DATA_URL.fullmatch(url):
        return {"type": "image", "source": {"type": "base64", "media_type": match[1], "data": match[2]}}
    if url.lower().startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise _fail(f"{param}.image_url.url", "expected a base64 data URL or an http(s) URL")


_PART_TRANSLATORS: dict[str, Callable[[JsonObject, str], JsonObject | None]] = {
    "text": _text_block, "image_url": _image_block,
}

_TEXT_ONLY: PartTypes = (frozenset({"text"}), frozenset())
_USER_PARTS: PartTypes = (frozenset({"text", "image_url"}), frozenset({"input_audio", "file"}))
_ASSISTANT_PARTS: PartTypes = (frozenset({"text"}), frozenset({"refusal"}))


def _part_block(part: object, param: str, parts: PartTypes) -> JsonObject | None:
    """The Anthropic block of one content part with its `cache_control`, or None when it is dropped."""
    part = _expect(part, dict, param)
    kind = _required(part, "type", str, f"{param}.type")
    translated, dropped = parts
    if kind in dropped:
        return None
    if kind not in translated:
        raise _fail(f"{param}.type", f"unsupported content part type {kind!r}")
    block = _PART_TRANSLATORS[kind](part, param)
    cache_control = _optional(part, "cache_control", dict, f"{param}.cache_control")
    if block is not None and cache_control is not None:
        block["cache_control"] = cache_control
    return block


def _content_blocks(content: object, param: str, parts: PartTypes) -> list[JsonObject]:
    """The non-empty Anthropic blocks of a message's content: a string, a list of parts, or null."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise _fail(param, "expected a string, an array of content parts or null")
    blocks = (_part_block(part, f"{param}[{i}]", parts) for i, part in enumerate(content))
    return [block for block in blocks if block is not None]


# --- messages ------------------------------------------------------------------------------------


def _tool_input(arguments: str, param: str) -> JsonObject:
    """The parsed `arguments` JSON of a tool call; blank means no arguments."""
    if not arguments.strip():
        return {}
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError as exc:
        raise _fail(param, f"malformed JSON ({exc})") from None
    if not isinstance(parsed, dict):
        raise _fail(param, "expected a JSON object")
    return parsed


def _tool_use(call_id: str, function: JsonObject, param: str) -> JsonObject:
    name = _required(function, "name", str, f"{param}.name")
    arguments = _required(function, "arguments", str, f"{param}.arguments")
    return {"type": "tool_use", "id": call_id, "name": name, "input": _tool_input(arguments, f"{param}.arguments")}


def _tool_call_block(call: object, param: str) -> JsonObject:
    call = _expect(call, dict, param)
    if call.get("type", "function") != "function":
        raise _fail(f"{param}.type", "only function tool calls are supported")
    call_id = _required(call, "id", str, f"{param}.id")
    return _tool_use(call_id, _required(call, "function", dict, f"{param}.function"), f"{param}.function")


def _tool_result(tool_use_id: str, content: object, param: str) -> JsonObject:
    result: JsonObject = {"type": "tool_result", "tool_use_id": tool_use_id}
    if blocks := _content_blocks(content, param, _TEXT_ONLY):
        result["content"] = blocks
    return result


def append_turn(turns: list[JsonObject], role: str, blocks: list[JsonObject]) -> None:
    """Add a turn, merging it into the previous one of the same role; empty turns vanish; in a user
    turn tool results come first (§1.3; the sort is stable).  Shared by both OpenAI dialects."""
    if not blocks:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"] += blocks
    else:
        turns.append({"role": role, "content": blocks})
    if role == "user":
        turns[-1]["content"].sort(key=lambda block: block["type"] != "tool_result")


class _Conversation:
    """Hoisted system blocks and merged user/assistant turns, built one OpenAI message at a time."""

    def __init__(self) -> None:
        self.system: list[JsonObject] = []
        self.turns: list[JsonObject] = []
        self._function_call_id: str | None = None  # of the latest legacy assistant function_call

    def add(self, message: object, index: int) -> None:
        param = f"messages[{index}]"
        message = _expect(message, dict, param)
        role = _required(message, "role", str, f"{param}.role")
        content_param = f"{param}.content"
        if role in ("system", "developer"):
            self.system += _content_blocks(message.get("content"), content_param, _TEXT_ONLY)
        elif role == "user":
            self._append("user", _content_blocks(message.get("content"), content_param, _USER_PARTS))
        elif role == "assistant":
            self._append("assistant", self._assistant_blocks(message, index))
        elif role == "tool":
            tool_call_id = _required(message, "tool_call_id", str, f"{param}.tool_call_id")
            self._append("user", [_tool_result(tool_call_id, message.get("content"), content_param)])
        elif role == "function":
            if self._function_call_id is None:
                raise _fail(f"{param}.role", "a function message must follow an assistant function_call")
            self._append("user", [_tool_result(self._function_call_id, message.get("content"), content_param)])
        else:
            raise _fail(f"{param}.role", f"unknown role {role!r}")

    def _assistant_blocks(self, message: JsonObject, index: int) -> list[JsonObject]:
        """Text, then tool_use blocks for `tool_calls` and the legacy `function_call`."""
        param = f"messages[{index}]"
        blocks = _content_blocks(message.get("content"), f"{param}.content", _ASSISTANT_PARTS)
        calls = _optional(message, "tool_calls", list, f"{param}.tool_calls") or []
        blocks += [_tool_call_block(call, f"{param}.tool_calls[{i}]") for i, call in enumerate(calls)]
        if (function_call := _optional(message, "function_call", dict, f"{param}.function_call")) is not None:
            self._function_call_id = f"toolu_function_call_{index}"
            blocks.append(_tool_use(self._function_call_id, function_call, f"{param}.function_call"))
        return blocks

    def _append(self, role: str, blocks: list[JsonObject]) -> None:
        append_turn(self.turns, role, blocks)


def _conversation(body: JsonObject) -> _Conversation:
    conversation = _Conversation()
    for index, message in enumerate(_required(body, "messages", list)):
        conversation.add(message, index)
    if not conversation.turns:
        raise _fail("messages", "at least one user or assistant message with content is required")
    return conversation


def _system(blocks: list[JsonObject]) -> JsonObject:
    """`system` as one "\\n"-joined string, or as text blocks when one carries cache_control."""
    if not blocks:
        return {}
    if any("cache_control" in block for block in blocks):
        return {"system": blocks}
    return {"system": "\n".join(block["text"] for block in blocks)}


# --- scalar fields -------------------------------------------------------------------------------


def _max_tokens(body: JsonObject, default: int) -> int:
    """max_completion_tokens ?? max_tokens ?? default."""
    limits = [(key, _optional(body, key, int)) for key in ("max_completion_tokens", "max_tokens")]
    for key, value in limits:
        if value is not None and value < 1:
            raise _fail(key, "must be at least 1")
    return next((value for _, value in limits if value is not None), default)


def _sampling(body: JsonObject) -> JsonObject:
    """temperature clamped to [0, 1]; top_p only without temperature (4.5/4.6 models reject both)."""
    temperature = _optional(body, "temperature", float)
    top_p = _optional(body, "top_p", float)
    if temperature is not None:
        return {"temperature": min(max(float(temperature), 0.0), 1.0)}
    return {} if top_p is None else {"top_p": top_p}


def _stop(body: JsonObject) -> JsonObject:
    stop = body.get("stop")
    if stop is None:
        return {}
    items = [stop] if isinstance(stop, str) else _expect(stop, list, "stop")
    sequences = [item for i, item in enumerate(items) if _expect(item, str, f"stop[{i}]").strip()]
    return {"stop_sequences": sequences} if sequences else {}


def _metadata(body: JsonObject) -> JsonObject:
    user = _optional(body, "user", str)
    return {"metadata": {"user_id": user}} if user else {}


def _check_n(body: JsonObject) -> None:
    if _optional(body, "n", int) not in (None, 1):
        raise _fail("n", "only n=1 is supported")


# --- tools ---------------------------------------------------------------------------------------


def _tool(function: object, param: str) -> JsonObject:
    """An Anthropic tool of an OpenAI function definition; `strict` is ignored (§8.1)."""
    function = _expect(function, dict, param)
    tool: JsonObject = {"name": _required(function, "name", str, f"{param}.name")}
    if description := _optional(function, "description", str, f"{param}.description"):
        tool["description"] = description
    parameters = _optional(function, "parameters", dict, f"{param}.parameters")
    tool["input_schema"] = parameters if parameters is not None else {"type": "object", "properties": {}}
    return tool


def _function_of(tool: object, param: str) -> JsonObject:
    tool = _expect(tool, dict, param)
    if tool.get("type") != "function":
        raise _fail(f"{param}.type", "only function tools are supported")
    return _required(tool, "function", dict, f"{param}.function")


def _tools(body: JsonObject) -> list[JsonObject]:
    """`tools` then the legacy `functions`."""
    tools = _optional(body, "tools", list) or []
    functions = _optional(body, "functions", list) or []
    return [_tool(_function_of(tool, f"tools[{i}]"), f"tools[{i}].function") for i, tool in enumerate(tools)] + [
        _tool(function, f"functions[{i}]") for i, function in enumerate(functions)
    ]


def _keyword_choice(value: object, param: str) -> JsonObject:
    if not isinstance(value, str) or value not in _TOOL_CHOICE_KEYWORDS:
        raise _fail(param, "expected 'auto', 'none', 'required' or a named function")
    return {"type": _TOOL_CHOICE_KEYWORDS[value]}


def _named_choice(function: JsonObject, param: str) -> JsonObject:
    return {"type": "tool", "name": _required(function, "name", str, f"{param}.name")}


def _tool_choice(body: JsonObject) -> JsonObject | None:
    """`tool_choice`, else the legacy `function_call`, as an Anthropic tool_choice."""
    if (choice := body.get("tool_choice")) is not None:
        if not isinstance(choice, dict):
            return _keyword_choice(choice, "tool_choice")
        if choice.get("type") != "function":
            raise _fail("tool_choice.type", "expected 'function'")
        return _named_choice(_required(choice, "function", dict, "tool_choice.function"), "tool_choice.function")
    if (call := body.get("function_call")) is None:
        return None
    return _named_choice(call, "function_call") if isinstance(call, dict) else _keyword_choice(call, "function_call")


def _tooling(body: JsonObject) -> JsonObject:
    """`tools` and `tool_choice`, with `parallel_tool_calls: false` as disable_parallel_tool_use."""
    return tooling(body, _tools(body), _tool_choice(body))


def tooling(body: JsonObject, tools: list[JsonObject], choice: JsonObject | None) -> JsonObject:
    """Anthropic's `tools` and `tool_choice` fields from translated tools and choice, with the body's
    `parallel_tool_calls: false` as disable_parallel_tool_use (shared by the OpenAI dialects)."""
    if _optional(body, "parallel_tool_calls", bool) is False:
        choice = choice or {"type": "auto"}
        if choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
    if not tools:
        if choice is not None and choice["type"] in ("any", "tool"):
            raise _fail("tool_choice", "a required or named tool choice needs tools")
        return {}
    return {"tools": tools, "tool_choice": choice} if choice else {"tools": tools}


# --- response_format and reasoning_effort --------------------------------------------------------


def _response_format(body: JsonObject) -> tuple[list[JsonObject], JsonObject]:
    """Extra system blocks, and request fields, that carry `response_format`."""
    response_format = _optional(body, "response_format", dict)
    if response_format is None:
        return [], {}
    kind = _required(response_format, "type", str, "response_format.type")
    if kind == "text":
        return [], {}
    if kind == "json_object":
        return [{"type": "text", "text": JSON_OBJECT_INSTRUCTION}], {}
    if kind == "json_schema":
        spec = _required(response_format, "json_schema", dict, "response_format.json_schema")
        schema = _required(spec, "schema", dict, "response_format.json_schema.schema")
        return [], {"output_config": {"format": {"type": "json_schema", "schema": schema}}}
    raise _fail("response_format.type", f"unsupported type {kind!r}")


def _in_tool_loop(turns: list[JsonObject]) -> bool:
    """Whether the last assistant turn called tools without its thinking blocks: with thinking on, the API
    would need them back."""
    last = next((turn for turn in reversed(turns) if turn["role"] == "assistant"), None)
    if last is None:
        return False
    kinds = {block["type"] for block in last["content"]}
    return "tool_use" in kinds and not kinds & {"thinking", "redacted_thinking"}


def apply_thinking(request: JsonObject, budget: int, adaptive_effort: str, param: str) -> None:
    """Thinking for a reasoning effort: adaptive on the models that only support it, else a budget.

    Thinking forbids changed sampling, so temperature and top_p go; it also forbids forced tool use.
    Mid tool loop without the previous turn's thinking blocks, thinking stays off.
    """
    if _in_tool_loop(request["messages"]):
        return
    if request.get("tool_choice", {}).get("type") in ("any", "tool"):
        raise _fail(param, "cannot be combined with a required or named tool_choice")
    spec = _REFERENCE_MODELS.get(request["model"])
    if spec is not None and spec.adaptive_thinking_only:
        request["thinking"] = {"type": "adaptive"}
        request.setdefault("output_config", {})["effort"] = adaptive_effort
    else:
        if request["max_tokens"] <= budget:  # the budget is on top of the answer the client asked for
            request["max_tokens"] += budget
            if spec is not None:  # but within the model's output limit
                request["max_tokens"] = min(request["max_tokens"], spec.max_tokens)
        request["thinking"] = {"type": "enabled", "budget_tokens": min(budget, request["max_tokens"] - 1)}
    request.pop("temperature", None)
    request.pop("top_p", None)


def _apply_reasoning_effort(request: JsonObject, body: JsonObject) -> None:
    """Thinking for `reasoning_effort` (OpenAI's format loses thinking blocks, so never mid tool loop)."""
    effort = _optional(body, "reasoning_effort", str)
    if effort in (None, "none"):
        return
    if effort not in REASONING_EFFORTS:
        raise _fail("reasoning_effort", "expected 'none', 'minimal', 'low', 'medium' or 'high'")
    apply_thinking(request, *REASONING_EFFORTS[effort], "reasoning_effort")


# --- the request ---------------------------------------------------------------------------------


def to_anthropic_request(body: object, *, default_max_tokens: int) -> JsonObject:
    """The Anthropic Messages request of an OpenAI Chat Completions request; unknown fields are ignored.

    Raises TranslationError for input that is invalid or cannot be expressed.
    """
    if not isinstance(body, dict):
        raise TranslationError("body: expected a JSON object", None)
    model = _required(body, "model", str)
    if not model:
        raise _fail("model", "must not be empty")
    _check_n(body)
    conversation = _conversation(body)
    format_system, format_fields = _response_format(body)
    request: JsonObject = {"model": model, "max_tokens": _max_tokens(body, default_max_tokens),
                     "messages": conversation.turns}
    request |= _system(conversation.system + format_system)
    request |= _sampling(body) | _stop(body) | _metadata(body) | _tooling(body) | format_fields
    _apply_reasoning_effort(request, body)
    if _optional(body, "stream", bool):
        request["stream"] = True
    return request
