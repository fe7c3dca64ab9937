"""Hypothesis strategies and checks the dialect property tests share: OpenAI requests, Anthropic
messages and their streams, and what a valid Anthropic request is."""

from __future__ import annotations

import itertools
import json
import string

import orjson
from hypothesis import strategies as st

from ccgate.dialects.openai_request import REASONING_EFFORTS
from ccgate.dialects.openai_response import FINISH_REASONS

EPHEMERAL = {"type": "ephemeral"}
MODEL = "claude-sonnet-4-6"


def user(content: object) -> dict:
    return {"role": "user", "content": content}


def assistant(content: object = None, **fields: object) -> dict:
    return {"role": "assistant", "content": content, **fields}


def call(call_id: str, name: str = "get_weather", arguments: str = '{"city": "Paris"}') -> dict:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def text(value: str, **fields: object) -> dict:
    return {"type": "text", "text": value, **fields}



def anthropic_message(content: list[dict], stop_reason: str = "end_turn", usage: dict | None = None) -> dict:
    return {"id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant",
            "model": "claude-sonnet-4-5-20250929", "content": content, "stop_reason": stop_reason,
            "stop_sequence": None, "usage": usage or {"input_tokens": 10, "output_tokens": 5}}




# --- requests: properties ------------------------------------------------------------------------

TEXT = st.text(max_size=12)
WORDS = st.text(min_size=1, max_size=12).filter(str.strip)
CACHE = st.sampled_from([None, EPHEMERAL, {"type": "ephemeral", "ttl": "1h"}])
NAMES = st.sampled_from(["get_weather", "search", "now", "lookup-user"])
JSON_SCALARS = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False,
                                                                                      allow_infinity=False) | TEXT
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(TEXT, inner, max_size=3), max_leaves=6)
JSON_OBJECTS = st.dictionaries(TEXT, JSON_VALUES, max_size=3)


def with_cache(part: dict, cache_control: dict | None) -> dict:
    return {**part, "cache_control": cache_control} if cache_control else part


def text_parts(texts: st.SearchStrategy[str] = TEXT) -> st.SearchStrategy[dict]:
    return st.builds(lambda t, cc: with_cache(text(t), cc), texts, CACHE)


DATA_URLS = st.builds("data:{};base64,{}".format, st.sampled_from(["image/png", "image/jpeg", "image/gif",
                                                                   "image/webp"]),
                      st.text(string.ascii_letters + string.digits + "+/=", min_size=4, max_size=16))
HTTP_URLS = st.builds("{}://example.com/{}.png".format, st.sampled_from(["http", "https"]),
                      st.text(string.ascii_lowercase, min_size=1, max_size=8))
IMAGE_PARTS = st.builds(lambda url, cc: with_cache({"type": "image_url", "image_url": {"url": url}}, cc),
                        DATA_URLS | HTTP_URLS, CACHE)
USER_CONTENT = TEXT | st.lists(text_parts() | IMAGE_PARTS, max_size=3)
FIRST_USER_CONTENT = WORDS | st.lists(text_parts(WORDS) | IMAGE_PARTS, min_size=1, max_size=3)
ASSISTANT_CONTENT = st.none() | TEXT | st.lists(text_parts(), max_size=2)
TOOL_CONTENT = TEXT | st.lists(text_parts(), max_size=2)
SYSTEM_MESSAGES = st.builds(lambda role, content: {"role": role, "content": content},
                            st.sampled_from(["system", "developer"]), TEXT | st.lists(text_parts(), max_size=2))
ARGUMENTS = st.just("") | JSON_OBJECTS.map(json.dumps)


@st.composite
def conversations(draw: st.DrawFn) -> list[dict]:
    """User first, then replies, tool-call rounds (answered in any order), legacy function rounds and extra user
    messages; system and developer messages dropped in anywhere."""
    ids = itertools.count()
    messages = [user(draw(FIRST_USER_CONTENT))]
    for _ in range(draw(st.integers(0, 4))):
        step = draw(st.sampled_from(["reply", "tools", "legacy", "user"]))
        if step == "reply":
            messages += [assistant(draw(ASSISTANT_CONTENT)), user(draw(USER_CONTENT))]
        elif step == "tools":
            calls = [call(f"call_{next(ids)}", draw(NAMES), draw(ARGUMENTS)) for _ in range(draw(st.integers(1, 3)))]
            messages.append(assistant(draw(st.none() | TEXT), tool_calls=calls))
            results = [{"role": "tool", "tool_call_id": c["id"], "content": draw(TOOL_CONTENT)} for c in calls]
            messages += draw(st.permutations(results))
            messages += [user(draw(USER_CONTENT))] if draw(st.booleans()) else []
        elif step == "legacy":
            name = draw(NAMES)
            messages += [assistant(None, function_call={"name": name, "arguments": draw(ARGUMENTS)}),
                         {"role": "function", "name": name, "content": draw(TEXT)}]
        else:
            messages.append(user(draw(USER_CONTENT)))
    for _ in range(draw(st.integers(0, 3))):
        messages.insert(draw(st.integers(0, len(messages))), draw(SYSTEM_MESSAGES))
    return messages


def optional(strategy: st.SearchStrategy) -> st.SearchStrategy:
    """`strategy`, or a marker for leaving the field out."""
    return st.just(...) | strategy


@st.composite
def openai_requests(draw: st.DrawFn) -> dict:
    body = {"model": draw(st.sampled_from([MODEL, "claude-haiku-4-5", "claude-opus-4-7"])),
            "messages": draw(conversations())}
    tools = draw(st.lists(NAMES.map(lambda n: {"type": "function", "function": {"name": n}}), max_size=3))
    forced = [{"type": "function", "function": {"name": t["function"]["name"]}} for t in tools]
    choices = st.sampled_from(["auto", "none"] + (["required", *forced] if tools else []))
    fields = {
        "max_tokens": st.integers(1, 64000), "max_completion_tokens": st.integers(1, 64000),
        "temperature": st.floats(0, 2), "top_p": st.floats(0, 1), "stop": st.none() | TEXT | st.lists(TEXT, max_size=4),
        "n": st.just(1), "user": TEXT, "tool_choice": choices,
        "parallel_tool_calls": st.booleans(), "stream": st.booleans(),
        "stream_options": st.just({"include_usage": True}), "seed": st.integers(), "presence_penalty": st.floats(-2, 2),
        "response_format": st.sampled_from([{"type": "text"}, {"type": "json_object"},
                                            {"type": "json_schema", "json_schema": {"name": "s", "schema": {}}}]),
        "functions": st.lists(NAMES.map(lambda n: {"name": n}), max_size=2),
    }
    body |= {key: value for key, strategy in fields.items() if (value := draw(optional(strategy))) is not ...}
    if tools:
        body["tools"] = tools
    forced_choice = body.get("tool_choice") not in (None, "auto", "none")
    efforts = ["none", *REASONING_EFFORTS] if not forced_choice else ["none"]
    if (effort := draw(optional(st.sampled_from(efforts)))) is not ...:
        body["reasoning_effort"] = effort
    return body


def assert_valid_messages(turns: list[dict]) -> None:
    """Alternating user/assistant turns starting with user, no empty content, every tool_use answered first
    thing in the next user turn and every tool_result answering the previous assistant turn."""
    assert turns and [turn["role"] for turn in turns] == [("user", "assistant")[i % 2] for i in range(len(turns))]
    previous_ids: list[str] = []
    for turn in turns:
        blocks = turn["content"]
        assert blocks and all(block["text"] for block in blocks if block["type"] == "text")
        results = list(itertools.takewhile(lambda block: block["type"] == "tool_result", blocks))
        assert all(block["type"] != "tool_result" for block in blocks[len(results):])
        if turn["role"] == "user":
            assert sorted(block["tool_use_id"] for block in results) == sorted(previous_ids)
        previous_ids = [block["id"] for block in blocks if block["type"] == "tool_use"]
        assert turn["role"] == "assistant" or not previous_ids
    assert not previous_ids, "the last turn calls tools nobody answered"


def assert_valid_request(request: dict) -> None:
    assert_valid_messages(request["messages"])
    system = request.get("system")
    assert system is None or (isinstance(system, str) and system) or (
        isinstance(system, list) and all(block["type"] == "text" and block["text"] for block in system))
    assert 0 <= request.get("temperature", 0) <= 1
    assert not ("temperature" in request and "top_p" in request)
    assert request["max_tokens"] >= 1
    assert all(sequence.strip() for sequence in request.get("stop_sequences", ["x"]))
    thinking = request.get("thinking")
    if thinking:
        assert "temperature" not in request and "top_p" not in request
        assert request.get("tool_choice", {}).get("type") not in ("any", "tool")
    if thinking and thinking["type"] == "enabled":
        assert 1024 <= thinking["budget_tokens"] < request["max_tokens"]
    orjson.dumps(request)


def count_blocks(request: dict, kind: str) -> int:
    return sum(block["type"] == kind for turn in request["messages"] for block in turn["content"])


def count_parts(body: dict, kind: str) -> int:
    return sum(isinstance(m.get("content"), list) and sum(p["type"] == kind for p in m["content"])
               for m in body["messages"] if m["role"] == "user")



TOOL_IDS = st.text(string.ascii_letters + string.digits, min_size=8, max_size=8).map("toolu_{}".format)
CONTENT_BLOCKS = st.one_of(
    st.builds(text, TEXT),
    st.builds(lambda name, tool_input: {"type": "tool_use", "name": name, "input": tool_input}, NAMES, JSON_OBJECTS),
    st.builds(lambda thought: {"type": "thinking", "thinking": thought, "signature": "EqQB"}, TEXT),
    st.just({"type": "redacted_thinking", "data": "EmwK"}),
)
USAGES = st.fixed_dictionaries(
    {"input_tokens": st.integers(0, 10**6), "cache_creation_input_tokens": st.integers(0, 10**5),
     "cache_read_input_tokens": st.integers(0, 10**6), "output_tokens": st.integers(1, 10**5)},
    optional={"output_tokens_details": st.fixed_dictionaries({"thinking_tokens": st.integers(0, 100)})},
)


@st.composite
def anthropic_messages(draw: st.DrawFn) -> dict:
    blocks = draw(st.lists(CONTENT_BLOCKS, max_size=5))
    for ordinal, block in enumerate(b for b in blocks if b["type"] == "tool_use"):
        block["id"] = f"{draw(TOOL_IDS)}{ordinal}"
    return anthropic_message(blocks, draw(st.sampled_from([*FINISH_REASONS])), draw(USAGES))


def split(value: str, draw: st.DrawFn) -> list[str]:
    """`value` cut at arbitrary places, empty pieces included."""
    cuts = sorted(draw(st.lists(st.integers(0, len(value)), max_size=4)))
    return [value[start:end] for start, end in itertools.pairwise([0, *cuts, len(value)])]


def block_events(index: int, block: dict, draw: st.DrawFn) -> list[dict]:
    """The start, deltas and stop of one content block (§3.3)."""
    kind = block["type"]
    if kind == "text":
        start, deltas = text(""), [{"type": "text_delta", "text": piece} for piece in split(block["text"], draw)]
    elif kind == "tool_use":
        start = {**block, "input": {}}
        deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in split(json.dumps(block["input"]),
                                                                                          draw)]
    elif kind == "thinking":
        start = {"type": "thinking", "thinking": "", "signature": ""}
        deltas = [{"type": "thinking_delta", "thinking": piece} for piece in split(block["thinking"], draw)]
        deltas.append({"type": "signature_delta", "signature": block["signature"]})
    else:
        start, deltas = block, []
    return [{"type": "content_block_start", "index": index, "content_block": start},
            *({"type": "content_block_delta", "index": index, "delta": delta} for delta in deltas),
            {"type": "content_block_stop", "index": index}]


def render_stream(message: dict, draw: st.DrawFn) -> list[dict]:
    """The Anthropic event sequence of a complete message, with pings dropped in (§3.1)."""
    usage = message["usage"]
    start_usage = {key: value for key, value in usage.items() if key.startswith(("input", "cache"))}
    start = {"type": "message_start", "message": {**message, "content": [], "stop_reason": None,
                                                  "usage": {**start_usage, "output_tokens": 1}}}
    final_usage = usage if draw(st.booleans()) else {k: v for k, v in usage.items() if k.startswith("output")}
    events = [start, *(e for i, b in enumerate(message["content"]) for e in block_events(i, b, draw)),
              {"type": "message_delta", "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
               "usage": final_usage},
              {"type": "message_stop"}]
    for _ in range(draw(st.integers(0, 3))):
        events.insert(draw(st.integers(1, len(events) - 1)), {"type": "ping"})
    return events


def tool_calls_of(message: object) -> list[tuple]:
    return [(c.id, c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls or []]


