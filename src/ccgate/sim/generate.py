"""What the simulated model "says": a deterministic reply derived from the request.

Directives in the last user text steer it (and are removed before it is echoed):
`[[sim:reply=TEXT]]` answers exactly TEXT, `[[sim:tokens=N]]` answers with N filler tokens,
`[[sim:fault=KIND]]` injects a fault (see ccgate.sim.faults).  Otherwise the reply is
"Hello from the ccgate simulator. You said: <text>", a tool call when tools are offered, or an
answer quoting the tool results when the last user turn carries them.  With structured output
(`output_config.format` of type json_schema) the answer is a sample value of the schema, as JSON.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from ccgate.sim.errors import invalid
from ccgate.sim.ids import new_id
from ccgate.sim.tokens import count_json, count_text, truncate_tokens

DIRECTIVE_RE = re.compile(r"\[\[sim:(reply|tokens|fault|delay_ms)=(.*?)\]\]", re.DOTALL)
GREETING = "Hello from the ccgate simulator."
ECHO_CHARS = 200
FILLER = ("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit", "sed", "do")
LOCATION_FIELDS = frozenset({"city", "location", "place", "town", "country", "region", "state", "destination",
                             "address", "area", "where"})
QUERY_FIELDS = frozenset({"query", "q", "text", "prompt", "question", "input", "message", "search", "keywords",
                          "topic", "content"})
PLACE_RE = re.compile(r"\b(?:in|at|for|near|from|to)\s+([A-Z][\w'-]*(?:\s+[A-Z][\w'-]*)*)")
CAPITALIZED_RE = re.compile(r"(?<!^)\b([A-Z][a-z][\w'-]*)")
MAX_SCHEMA_DEPTH = 6


@dataclass(slots=True)
class Directives:
    """The `[[sim:...]]` directives found in the last user text."""

    reply: str | None = None
    tokens: int | None = None
    fault: str | None = None
    delay_ms: int | None = None  # how long a `slow-first-byte` fault waits


@dataclass(slots=True)
class Reply:
    """The generated assistant turn."""

    content: list[dict[str, Any]]
    stop_reason: str
    stop_sequence: str | None
    output_tokens: int


def _texts(content: Any) -> list[str]:
    """The text of a content value (a string or blocks), block by block; tolerant of bad shapes."""
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        return []
    return [block["text"] for block in content
            if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str)]


REMINDER_RE = re.compile(r"<system-reminder>.*?</system-reminder>", re.DOTALL)


def last_user_text(body: Any) -> str:
    """The text blocks of the last user message, joined by newlines ("" if there is none), without the
    <system-reminder> blocks an agent such as Claude Code adds around what the user typed."""
    messages = body.get("messages") if isinstance(body, dict) else None
    for message in reversed(messages) if isinstance(messages, list) else ():
        if isinstance(message, dict) and message.get("role") == "user":
            return REMINDER_RE.sub("", "\n".join(_texts(message.get("content")))).strip()
    return ""


def read_directives(text: str) -> tuple[str, Directives]:
    """Split directives out of the text: (text without them, directives)."""
    if "[[sim:" not in text:
        return text, Directives()
    found = Directives()
    for name, value in DIRECTIVE_RE.findall(text):
        if name in ("tokens", "delay_ms"):
            if not value.strip().isdigit():
                raise invalid(f"[[sim:{name}={value}]]: expected a non-negative integer")
            setattr(found, name, int(value))
        else:
            setattr(found, name, value.strip() if name == "fault" else value)
    return DIRECTIVE_RE.sub("", text).strip(), found


def _snippet(text: str) -> str:
    """User text on one line, cut to ECHO_CHARS."""
    flat = " ".join(text.split())
    return flat if len(flat) <= ECHO_CHARS else flat[: ECHO_CHARS - 3] + "..."


def _place(text: str) -> str | None:
    """A place name in the text: 'in Tokyo', 'for New York'; else the last capitalized word."""
    match = PLACE_RE.search(text)
    if match:
        return match.group(1)
    words = CAPITALIZED_RE.findall(text)
    return words[-1] if words else None


def sample_value(name: str, schema: Any, text: str, depth: int = 0) -> Any:
    """A plausible value for a JSON-schema property, preferring words from the user text."""
    if not isinstance(schema, dict) or depth > MAX_SCHEMA_DEPTH:
        return "example"
    for key in ("const", "default"):
        if key in schema:
            return schema[key]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return sample_value(name, schema[key][0], text, depth + 1)
    kind = schema.get("type", "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties") or {}
        keys = schema.get("required") or list(properties)
        return {key: sample_value(key, properties.get(key, {}), text, depth + 1) for key in keys}
    if kind == "array":
        return [sample_value(name, schema.get("items", {}), text, depth + 1)]
    if kind in ("integer", "number"):
        return max(1, schema.get("minimum", 1))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    lowered = name.lower()
    if lowered in LOCATION_FIELDS or "city" in lowered or "location" in lowered:
        return _place(text) or "example"
    if lowered in QUERY_FIELDS and text:
        return _snippet(text)
    return "example"


def _signature(thinking: str) -> str:
    """A stable opaque signature for a thinking text."""
    return base64.b64encode(b"\x12\x08sim" + hashlib.blake2b(thinking.encode(), digest_size=48).digest()).decode()


def _filler(tokens: int) -> str:
    """Exactly `tokens` tokens of filler words."""
    return " ".join(FILLER[i % len(FILLER)] for i in range(tokens))


def _name_words(name: str) -> set[str]:
    """The words of a tool name (`get_weather`, `WebFetch`) long enough to mean something."""
    return {word.lower() for word in re.split(r"[_\-\s]+|(?<=[a-z])(?=[A-Z])", name) if len(word) >= 4}


def _pick_tool(tools: list[dict[str, Any]], choice: dict[str, Any], text: str) -> dict[str, Any] | None:
    """The custom tool to call: the named one for tool_choice `tool`, the first for `any`, and for `auto`
    the first whose name the user's text mentions (so "Weather in Tokyo?" calls get_weather while
    "Say hello" gets an answer, even from an agent offering dozens of tools)."""
    custom = [tool for tool in tools if tool.get("type", "custom") == "custom"]
    if choice.get("type") == "tool":
        return next((tool for tool in custom if tool["name"] == choice["name"]), None)
    if choice.get("type") == "any":
        return custom[0] if custom else None
    words = set(re.findall(r"\w+", text.lower()))
    return next((tool for tool in custom if _name_words(tool["name"]) & words), None)


def _answer(results: list[dict[str, Any]], text: str, directives: Directives) -> str:
    """The reply text: as directed, quoting tool results, or the greeting echoing the user."""
    if directives.reply is not None:
        return directives.reply
    if directives.tokens is not None:
        return _filler(directives.tokens)
    if results:
        quoted = "; ".join(" ".join(_texts(block.get("content") or "")) for block in results)
        verb = "reported an error" if any(block.get("is_error") for block in results) else "returned"
        return f"The tool {verb}: {quoted}"
    return f"{GREETING} You said: {_snippet(text)}" if text else GREETING


def _structured_output_schema(body: dict[str, Any]) -> Any:
    """The JSON schema the answer must follow, or None."""
    output_format = (body.get("output_config") or {}).get("format") or {}
    return output_format.get("schema") if output_format.get("type") == "json_schema" else None


def _plan(body: dict[str, Any], text: str, directives: Directives) -> list[dict[str, Any]]:
    """The blocks the model would write with no limit on length: [thinking], text and/or tool_use."""
    last = body["messages"][-1]
    results = []
    if last["role"] == "user" and isinstance(last["content"], list):
        results = [block for block in last["content"] if block.get("type") == "tool_result"]
    choice = body.get("tool_choice") or {"type": "auto"}
    forced = choice["type"] in ("any", "tool")
    steered = directives.reply is not None or directives.tokens is not None
    tool = None
    if body.get("tools") and choice["type"] != "none" and not results and (forced or not steered):
        tool = _pick_tool(body["tools"], choice, text)
    blocks: list[dict[str, Any]] = []
    if (body.get("thinking") or {}).get("type") in ("enabled", "adaptive"):
        intent = f"call the {tool['name']} tool" if tool else "answer directly"
        thought = f"The user wrote: {_snippet(text) or '(no text)'}. I will {intent}."
        blocks.append({"type": "thinking", "thinking": thought, "signature": _signature(thought)})
    if tool is None:
        schema = _structured_output_schema(body)
        answer = _answer(results, text, directives) if schema is None or steered else json.dumps(
            sample_value("answer", schema, text))
        blocks.append({"type": "text", "text": answer})
        return blocks
    if not forced:
        blocks.append({"type": "text", "text": f"I'll use the {tool['name']} tool."})
    blocks.append({"type": "tool_use", "id": new_id("toolu_"), "name": tool["name"],
                   "input": sample_value(tool["name"], tool.get("input_schema", {}), text)})
    return blocks


def _cut_at_stop(text: str, stop_sequences: list[str]) -> tuple[str, str | None]:
    """Text up to the earliest stop sequence, and that sequence (None if none matched)."""
    hits = [(text.find(seq), seq) for seq in stop_sequences if seq in text]
    if not hits:
        return text, None
    index, seq = min(hits)
    return text[:index], seq


def generate(body: dict[str, Any], text: str, directives: Directives) -> Reply:
    """The reply to a validated request, within max_tokens and stop_sequences."""
    budget = body["max_tokens"]
    if budget == 0:  # cache pre-warming (anthropic-api.md §6.6)
        return Reply([], "max_tokens", None, 0)
    omit_thinking = (body.get("thinking") or {}).get("display") == "omitted"
    stop_sequences = body.get("stop_sequences") or []
    content: list[dict[str, Any]] = []
    used = 0
    for block in _plan(body, text, directives):
        left = budget - used
        if block["type"] == "tool_use":  # always the last block
            cost = count_text(block["name"]) + count_json(block["input"])
            if cost > left:
                return Reply(content, "max_tokens", None, max(used, 1))
            content.append(block)
            return Reply(content, "tool_use", None, used + cost)
        field = block["type"]  # "text" or "thinking": the block keeps its text under its type's name
        written, matched = _cut_at_stop(block[field], stop_sequences) if field == "text" else (block[field], None)
        cost = count_text(written)
        stop = "stop_sequence" if matched is not None else None
        if cost > left:
            written, cost, matched, stop = truncate_tokens(written, left), left, None, "max_tokens"
        used += cost
        block[field] = "" if field == "thinking" and omit_thinking else written
        if field == "thinking" or written:
            content.append(block)
        if stop is not None:
            return Reply(content, stop, matched, max(used, 1))
    return Reply(content, "end_turn", None, max(used, 1))
