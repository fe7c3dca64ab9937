"""The Anthropic API simulator, driven over a real socket by the official SDK and raw HTTP."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import anthropic
import pytest

from ccgate.sim.config import SimConfig
from ccgate.sim.faults import Fault
from ccgate.sim.server import start_sim
from ccgate.sim.tokens import IMAGE_BASE_TOKENS, IMAGE_MAX_TOKENS

MODEL = "claude-haiku-4-5"
MODEL_ID = "claude-haiku-4-5-20251001"
ID_RE = r"[0-9A-Za-z]{24}"
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"},
                                                      "metric": {"type": "boolean"}},
                     "required": ["city", "days", "metric"]},
}
CACHE_MODEL = "claude-sonnet-4-6"  # minimum cacheable prompt: 1024 tokens
LONG_SYSTEM = "You are a meticulous assistant who answers questions about the weather. " * 120  # ~1.5k tokens


@contextmanager
def running_sim(config: SimConfig) -> Iterator[str]:
    """A simulator on 127.0.0.1:<free port> in its own thread and loop; yields its base URL."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runner, port = asyncio.run_coroutine_threadsafe(start_sim("127.0.0.1", 0, config), loop).result(10)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture(scope="session")
def sim_url() -> Iterator[str]:
    """The shared simulator with default settings."""
    with running_sim(SimConfig()) as url:
        yield url


@pytest.fixture
def client(sim_url: str) -> anthropic.Anthropic:
    """A sync SDK client without retries."""
    return anthropic.Anthropic(base_url=sim_url, api_key="test-key", max_retries=0)


def headers(key: str = "test-key", **extra: str) -> dict[str, str]:
    """The headers the SDK would send."""
    return {"x-api-key": key, "anthropic-version": "2023-06-01", "content-type": "application/json", **extra}


def http(url: str, body: Any = None, hdrs: dict[str, str] | None = None,
         method: str | None = None) -> tuple[int, dict[str, str], Any]:
    """One raw HTTP call: (status, lower-cased headers, parsed JSON body or raw text)."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=hdrs if hdrs is not None else headers(), method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            status, resp_headers, raw = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        status, resp_headers, raw = err.code, err.headers, err.read()
    text = raw.decode()
    try:
        parsed: Any = json.loads(text) if text else None
    except json.JSONDecodeError:
        parsed = text
    return status, {k.lower(): v for k, v in resp_headers.items()}, parsed


def parse_sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    """Raw SSE text to [(event name, data)], asserting every event has both lines."""
    events = []
    for chunk in text.strip().split("\n\n"):
        lines = chunk.split("\n")
        assert lines[0].startswith("event: ") and lines[1].startswith("data: "), chunk
        events.append((lines[0][7:], json.loads(lines[1][6:])))
    return events


def stream_raw(sim_url: str, body: dict[str, Any], key: str = "test-key", **extra: str) -> tuple[int, dict, str]:
    """POST a streaming request and return (status, headers, whole SSE text)."""
    status, hdrs, text = http(f"{sim_url}/v1/messages", {**body, "stream": True}, headers(key, **extra))
    return status, hdrs, text


def msg(text: str, **fields: Any) -> dict[str, Any]:
    """A minimal /v1/messages body with one user turn."""
    return {"model": MODEL, "max_tokens": 256, "messages": [{"role": "user", "content": text}], **fields}


# --- text replies -------------------------------------------------------------------------------

def test_text_reply_has_full_shape(client: anthropic.Anthropic) -> None:
    message = client.messages.create(**msg("Hi there"))
    assert message.content[0].text == "Hello from the ccgate simulator. You said: Hi there"
    assert message.model == MODEL_ID
    assert re.fullmatch(f"msg_{ID_RE}", message.id)
    assert re.fullmatch(f"req_{ID_RE}", message._request_id or "")
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    usage = message.usage
    assert usage.input_tokens > 0 and usage.output_tokens >= 1
    assert usage.cache_creation_input_tokens == 0 and usage.cache_read_input_tokens == 0
    assert usage.cache_creation is not None and usage.cache_creation.ephemeral_5m_input_tokens == 0
    assert usage.service_tier == "standard" and usage.inference_geo == "not_available"


def test_response_headers_carry_request_id_and_rate_limits(sim_url: str) -> None:
    status, hdrs, body = http(f"{sim_url}/v1/messages?beta=true", msg("hello"))
    assert status == 200 and body["type"] == "message"
    assert re.fullmatch(f"req_{ID_RE}", hdrs["request-id"])
    for name in ("requests", "tokens", "input-tokens", "output-tokens"):
        assert int(hdrs[f"anthropic-ratelimit-{name}-limit"]) > 0
        assert int(hdrs[f"anthropic-ratelimit-{name}-remaining"]) >= 0
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", hdrs[f"anthropic-ratelimit-{name}-reset"])


async def test_async_client_with_bearer_token(sim_url: str) -> None:
    client = anthropic.AsyncAnthropic(base_url=sim_url, auth_token="oauth-token", max_retries=0)
    message = await client.messages.create(**msg("from async"))
    assert message.content[0].text.endswith("You said: from async")


def test_reply_directive_is_exact(client: anthropic.Anthropic) -> None:
    message = client.messages.create(**msg("[[sim:reply=Exactly this, nothing else.]] please"))
    assert [block.text for block in message.content] == ["Exactly this, nothing else."]


def test_tokens_directive_sets_output_tokens(client: anthropic.Anthropic) -> None:
    message = client.messages.create(**msg("[[sim:tokens=50]]"))
    assert message.usage.output_tokens == 50 and message.stop_reason == "end_turn"


def test_max_tokens_cuts_the_reply(client: anthropic.Anthropic) -> None:
    message = client.messages.create(**msg("[[sim:tokens=50]]", max_tokens=10))
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 10
    assert len(message.content[0].text.split()) == 10


def test_stop_sequence_stops_before_the_match(client: anthropic.Anthropic) -> None:
    message = client.messages.create(**msg("[[sim:reply=alpha beta STOP gamma]]", stop_sequences=["gamma", "STOP"]))
    assert message.content[0].text == "alpha beta "
    assert message.stop_reason == "stop_sequence" and message.stop_sequence == "STOP"


def test_prewarm_with_zero_max_tokens(client: anthropic.Anthropic) -> None:
    message = client.messages.create(**msg("warm up", max_tokens=0))
    assert message.content == [] and message.stop_reason == "max_tokens" and message.usage.output_tokens == 0


# --- streams ------------------------------------------------------------------------------------

def test_stream_event_sequence_on_the_wire(sim_url: str) -> None:
    status, hdrs, text = stream_raw(sim_url, msg("[[sim:tokens=20]]"))
    assert status == 200 and hdrs["content-type"].startswith("text/event-stream")
    assert hdrs["transfer-encoding"] == "chunked"
    events = parse_sse(text)
    names = [name for name, _ in events]
    deltas = names.count("content_block_delta")
    assert deltas >= 2
    assert names == ["message_start", "content_block_start", "ping", *["content_block_delta"] * deltas,
                     "content_block_stop", "message_delta", "message_stop"]
    assert all(name == data["type"] for name, data in events)
    start = events[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None and start["usage"]["output_tokens"] == 1
    assert events[1][1] == {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    text_out = "".join(data["delta"]["text"] for name, data in events if name == "content_block_delta")
    assert len(text_out.split()) == 20
    final = events[-2][1]
    assert final["delta"]["stop_reason"] == "end_turn"
    assert final["usage"]["output_tokens"] == 20
    assert final["usage"]["input_tokens"] == start["usage"]["input_tokens"]


def test_sdk_stream_helper_accumulates(client: anthropic.Anthropic) -> None:
    with client.messages.stream(**msg("stream me")) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 1
    assert "".join(pieces) == final.content[0].text == "Hello from the ccgate simulator. You said: stream me"
    assert final.usage.output_tokens == 11 and final.stop_reason == "end_turn"


async def test_async_sdk_stream(sim_url: str) -> None:
    client = anthropic.AsyncAnthropic(base_url=sim_url, api_key="test-key", max_retries=0)
    async with client.messages.stream(**msg("[[sim:tokens=9]]")) as stream:
        final = await stream.get_final_message()
    assert final.usage.output_tokens == 9 and final.model == MODEL_ID


# --- tools --------------------------------------------------------------------------------------

def test_tool_round_trip(client: anthropic.Anthropic) -> None:
    first = client.messages.create(**msg("Weather in Tokyo?", tools=[WEATHER_TOOL]))
    assert first.stop_reason == "tool_use"
    assert [block.type for block in first.content] == ["text", "tool_use"]
    call = first.content[1]
    assert re.fullmatch(f"toolu_{ID_RE}", call.id)
    assert call.name == "get_weather" and call.input == {"city": "Tokyo", "days": 1, "metric": True}
    second = client.messages.create(**msg("", tools=[WEATHER_TOOL], messages=[
        {"role": "user", "content": "Weather in Tokyo?"},
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "15C and sunny"}]},
    ]))
    assert second.stop_reason == "end_turn"
    assert second.content[0].text == "The tool returned: 15C and sunny"


def test_tool_choice_named_tool_forced_and_none(client: anthropic.Anthropic) -> None:
    other = {"name": "lookup", "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}}}
    forced = client.messages.create(**msg("find cats", tools=[WEATHER_TOOL, other],
                                          tool_choice={"type": "tool", "name": "lookup"}))
    assert [block.type for block in forced.content] == ["tool_use"]
    assert forced.content[0].name == "lookup" and forced.content[0].input == {"query": "find cats"}
    plain = client.messages.create(**msg("no tools please", tools=[WEATHER_TOOL], tool_choice={"type": "none"}))
    assert [block.type for block in plain.content] == ["text"] and plain.stop_reason == "end_turn"


def test_tool_use_streams_input_json_deltas(sim_url: str, client: anthropic.Anthropic) -> None:
    _, _, text = stream_raw(sim_url, msg("Weather in Paris?", tools=[WEATHER_TOOL], tool_choice={"type": "any"}))
    events = parse_sse(text)
    start = next(data for name, data in events if name == "content_block_start")
    assert start["index"] == 0 and start["content_block"]["type"] == "tool_use"
    assert start["content_block"]["input"] == {}
    fragments = [data["delta"]["partial_json"] for name, data in events if name == "content_block_delta"]
    assert fragments[0] == "" and len(fragments) > 2
    assert json.loads("".join(fragments)) == {"city": "Paris", "days": 1, "metric": True}
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    with client.messages.stream(**msg("Weather in Paris?", tools=[WEATHER_TOOL])) as stream:
        final = stream.get_final_message()
    assert final.content[1].input["city"] == "Paris"


# --- thinking -----------------------------------------------------------------------------------

def test_thinking_stream_ends_with_one_signature_delta(sim_url: str, client: anthropic.Anthropic) -> None:
    body = msg("Think first", max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024})
    _, _, text = stream_raw(sim_url, body)
    events = parse_sse(text)
    assert events[1][1]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    block0 = [data["delta"] for name, data in events if name == "content_block_delta" and data["index"] == 0]
    assert [d["type"] for d in block0[:-1]] == ["thinking_delta"] * (len(block0) - 1) and len(block0) > 2
    assert block0[-1]["type"] == "signature_delta" and block0[-1]["signature"]
    stop0 = next(i for i, (name, data) in enumerate(events) if name == "content_block_stop")
    assert events[stop0 - 1][1]["delta"]["type"] == "signature_delta"
    assert events[stop0 + 1][1]["content_block"]["type"] == "text" and events[stop0 + 1][1]["index"] == 1
    with client.messages.stream(**body) as stream:
        final = stream.get_final_message()
    assert [block.type for block in final.content] == ["thinking", "text"]
    assert final.content[0].thinking.startswith("The user wrote: Think first") and final.content[0].signature


# --- prompt caching -----------------------------------------------------------------------------

def cached_request(text: str = "What is the weather?", ttl: str | None = None, **fields: Any) -> dict[str, Any]:
    """A request whose long system prompt carries a cache breakpoint."""
    control = {"type": "ephemeral", **({"ttl": ttl} if ttl else {})}
    return msg(text, model=CACHE_MODEL, system=[{"type": "text", "text": LONG_SYSTEM, "cache_control": control}],
               **fields)


def test_second_identical_request_reads_the_cache(sim_url: str) -> None:
    client = anthropic.Anthropic(base_url=sim_url, api_key="cache-key-1", max_retries=0)
    body = cached_request()
    total = client.messages.count_tokens(**{k: v for k, v in body.items() if k != "max_tokens"}).input_tokens
    first = client.messages.create(**body).usage
    second = client.messages.create(**body).usage
    assert first.cache_creation_input_tokens > 1024 and first.cache_read_input_tokens == 0
    assert first.cache_creation.ephemeral_5m_input_tokens == first.cache_creation_input_tokens
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.cache_creation_input_tokens == 0
    assert second.input_tokens < total
    assert second.input_tokens + second.cache_read_input_tokens == total
    other_key = anthropic.Anthropic(base_url=sim_url, api_key="cache-key-2", max_retries=0)
    assert other_key.messages.create(**body).usage.cache_read_input_tokens == 0


def test_cache_prefix_hit_after_conversation_grows(sim_url: str) -> None:
    client = anthropic.Anthropic(base_url=sim_url, api_key="cache-key-3", max_retries=0)
    first = client.messages.create(**cached_request(ttl="1h")).usage
    assert first.cache_creation.ephemeral_1h_input_tokens == first.cache_creation_input_tokens > 0
    longer = cached_request(messages=[
        {"role": "user", "content": "What is the weather?"},
        {"role": "assistant", "content": "Sunny."},
        {"role": "user", "content": [{"type": "text", "text": "And tomorrow?",
                                      "cache_control": {"type": "ephemeral"}}]},
    ], ttl="1h")
    second = client.messages.create(**longer).usage
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.cache_creation.ephemeral_5m_input_tokens > 0 and second.input_tokens == 0


def test_automatic_caching_and_minimum_length(sim_url: str) -> None:
    client = anthropic.Anthropic(base_url=sim_url, api_key="cache-key-4", max_retries=0)
    auto = msg("x", model=CACHE_MODEL, system=LONG_SYSTEM, cache_control={"type": "ephemeral"})
    assert client.messages.create(**auto).usage.cache_creation_input_tokens > 1024
    assert client.messages.create(**auto).usage.cache_read_input_tokens > 1024
    below_haiku_minimum = {**auto, "model": MODEL}  # Haiku 4.5 caches only from 4096 tokens
    short = msg("short", model=CACHE_MODEL,
                system=[{"type": "text", "text": "tiny", "cache_control": {"type": "ephemeral"}}])
    for body in (below_haiku_minimum, below_haiku_minimum, short, short):
        usage = client.messages.create(**body).usage
        assert usage.cache_creation_input_tokens == usage.cache_read_input_tokens == 0


def test_cache_min_tokens_override() -> None:
    with running_sim(SimConfig(cache_min_tokens=1)) as url:
        client = anthropic.Anthropic(base_url=url, api_key="k", max_retries=0)
        short = msg("short", system=[{"type": "text", "text": "tiny", "cache_control": {"type": "ephemeral"}}])
        assert client.messages.create(**short).usage.cache_creation_input_tokens > 0
        assert client.messages.create(**short).usage.cache_read_input_tokens > 0


def test_count_tokens_equals_reported_input(client: anthropic.Anthropic) -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo" * 40}}
    body = cached_request(tools=[WEATHER_TOOL], messages=[
        {"role": "user", "content": [image, {"type": "text", "text": "What is in this picture?"}]}])
    counted = client.messages.count_tokens(**{k: v for k, v in body.items() if k != "max_tokens"}).input_tokens
    usage = client.messages.create(**body).usage
    assert counted == usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens


def test_images_count_by_fixed_formula(client: anthropic.Anthropic) -> None:
    def count(content: Any) -> int:
        return client.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": content}]).input_tokens
    base = count([{"type": "text", "text": "look"}])
    data = "A" * 1000
    small = count([{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}},
                   {"type": "text", "text": "look"}])
    remote = count([{"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                    {"type": "text", "text": "look"}])
    assert small - base == IMAGE_BASE_TOKENS + 10
    assert remote - base == IMAGE_MAX_TOKENS


# --- models -------------------------------------------------------------------------------------

def test_models_list_paginates_newest_first(client: anthropic.Anthropic, sim_url: str) -> None:
    every = [model.id for model in client.models.list(limit=5)]
    assert every[0] == "claude-fable-5-1" and every[-1] == "claude-sonnet-4-5-20250929" and len(every) == 12
    _, _, page = http(f"{sim_url}/v1/models?limit=5", method="GET")
    assert page["has_more"] is True and page["first_id"] == every[0] and page["last_id"] == every[4]
    _, _, after = http(f"{sim_url}/v1/models?limit=5&after_id={every[9]}", method="GET")
    assert [m["id"] for m in after["data"]] == every[10:] and after["has_more"] is False
    _, _, before = http(f"{sim_url}/v1/models?limit=2&before_id={every[5]}", method="GET")
    assert [m["id"] for m in before["data"]] == every[3:5] and before["has_more"] is True


def test_model_lookup_resolves_alias_and_404s(client: anthropic.Anthropic) -> None:
    model = client.models.retrieve("claude-haiku-4-5")
    assert model.id == MODEL_ID and model.display_name == "Claude Haiku 4.5" and model.max_tokens == 64_000
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.models.retrieve("claude-nope")
    assert caught.value.body["error"] == {"type": "not_found_error", "message": "model: claude-nope"}


# --- validation ---------------------------------------------------------------------------------

BUDGET = ("`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at "
          "https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size")
TOOL_USE_TURN = {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                                   "input": {"city": "Oslo"}}]}
INVALID_BODIES: list[tuple[str, Any, int, str]] = [
    ("missing model", {"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}, 400, "model: Field required"),
    ("unknown model", msg("x", model="claude-xyz"), 404, "model: claude-xyz"),
    ("missing max_tokens", {"model": MODEL, "messages": [{"role": "user", "content": "x"}]}, 400,
     "max_tokens: Field required"),
    ("max_tokens too large", msg("x", max_tokens=100_000), 400,
     "max_tokens: 100000 > 64000, which is the maximum allowed number of output tokens for claude-haiku-4-5-20251001"),
    ("missing messages", {"model": MODEL, "max_tokens": 5}, 400, "messages: Field required"),
    ("temperature and top_p", msg("x", temperature=0.5, top_p=0.9), 400,
     "`temperature` and `top_p` cannot both be specified for this model. Please use only one."),
    ("small budget", msg("x", max_tokens=4000, thinking={"type": "enabled", "budget_tokens": 500}), 400,
     "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"),
    ("budget over max_tokens", msg("x", max_tokens=1500, thinking={"type": "enabled", "budget_tokens": 2000}), 400,
     BUDGET),
    ("enabled on adaptive-only", msg("x", model="claude-opus-4-7", max_tokens=4000,
                                     thinking={"type": "enabled", "budget_tokens": 2000}), 400,
     "thinking.type.enabled is not supported for this model. Use thinking.type.adaptive and output_config.effort "
     "to control thinking behavior."),
    ("forced tool with thinking", msg("x", max_tokens=4000, thinking={"type": "adaptive"}, tools=[WEATHER_TOOL],
                                      tool_choice={"type": "any"}), 400,
     "Thinking may not be enabled when tool_choice forces tool use."),
    ("tool_use without result", msg("x", tools=[WEATHER_TOOL], messages=[
        {"role": "user", "content": "weather?"}, TOOL_USE_TURN, {"role": "user", "content": "well?"}]), 400,
     "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_1. "
     "Each `tool_use` block must have a corresponding `tool_result` block in the next message."),
    ("result after text", msg("x", tools=[WEATHER_TOOL], messages=[
        {"role": "user", "content": "weather?"}, TOOL_USE_TURN,
        {"role": "user", "content": [{"type": "text", "text": "here"},
                                     {"type": "tool_result", "tool_use_id": "toolu_1", "content": "9C"}]}]), 400,
     "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_1. "
     "Each `tool_use` block must have a corresponding `tool_result` block in the next message."),
    ("unexpected tool_result", msg("x", messages=[
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "?"}]}]), 400,
     "messages.0.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_9. "
     "Each `tool_result` block must have a corresponding `tool_use` block in the previous message."),
    ("bad tool name", msg("x", tools=[{**WEATHER_TOOL, "name": "get weather!"}]), 400,
     "tools.0.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'"),
    ("five breakpoints", msg("x", system=[{"type": "text", "text": f"part {i}", "cache_control": {"type": "ephemeral"}}
                                          for i in range(5)]), 400,
     "A maximum of 4 blocks with cache_control may be provided. Found 5."),
]


@pytest.mark.parametrize(("body", "status", "message"), [case[1:] for case in INVALID_BODIES],
                         ids=[case[0] for case in INVALID_BODIES])
def test_invalid_requests_get_anthropic_errors(sim_url: str, body: Any, status: int, message: str) -> None:
    got, hdrs, error = http(f"{sim_url}/v1/messages", body)
    assert got == status
    expected_type = "not_found_error" if status == 404 else "invalid_request_error"
    assert error == {"type": "error", "error": {"type": expected_type, "message": message},
                     "request_id": hdrs["request-id"]}


def test_header_and_json_errors(sim_url: str) -> None:
    url = f"{sim_url}/v1/messages"
    status, _, error = http(url, msg("x"), {"anthropic-version": "2023-06-01", "content-type": "application/json"})
    assert status == 401
    assert error["error"] == {"type": "authentication_error", "message": "x-api-key header is required"}
    status, _, error = http(url, msg("x"), {"x-api-key": "k", "content-type": "application/json"})
    assert (status, error["error"]["message"]) == (400, "anthropic-version: header is required")
    status, _, error = http(url, b'{"model": ', headers())
    assert status == 400 and error["error"]["message"].startswith("The request body is not valid JSON: ")
    status, _, error = http(f"{sim_url}/v1/nothing-here", msg("x"))
    assert (status, error["error"]["type"]) == (404, "not_found_error")
    status, _, _ = http(f"{sim_url}/", method="HEAD")
    assert status == 404


def test_oversized_body_is_413(sim_url: str) -> None:
    status, _, error = http(f"{sim_url}/v1/messages", b"{" + b" " * (32 * 1024 * 1024 + 10) + b"}")
    assert status == 413 and error["error"]["type"] == "request_too_large"


@pytest.mark.parametrize("field", ["max_tokens", "stream", "temperature", "stop_sequences", "metadata"])
def test_count_tokens_rejects_generation_fields(sim_url: str, field: str) -> None:
    value = {"max_tokens": 10, "stream": True, "temperature": 0.5, "stop_sequences": ["x"],
             "metadata": {"user_id": "u"}}[field]
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}], field: value}
    status, _, error = http(f"{sim_url}/v1/messages/count_tokens", body)
    assert (status, error["error"]["message"]) == (400, f"{field}: Extra inputs are not permitted")


# --- faults -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "exc", "error_type"), [
    ("429", anthropic.RateLimitError, "rate_limit_error"),
    ("529", anthropic.OverloadedError, "overloaded_error"),
    ("500", anthropic.InternalServerError, "api_error"),
    ("401", anthropic.AuthenticationError, "authentication_error"),
    ("403", anthropic.PermissionDeniedError, "permission_error"),
    ("400", anthropic.BadRequestError, "invalid_request_error"),
])
def test_header_faults_raise_sdk_errors(client: anthropic.Anthropic, kind: str, exc: type, error_type: str) -> None:
    with pytest.raises(exc) as caught:
        client.messages.create(**msg("x"), extra_headers={"x-sim-fault": kind, "x-sim-retry-after": "7"})
    error = caught.value
    assert error.status_code == int(kind) and error.body["error"]["type"] == error_type
    retryable = kind in ("429", "529", "500")
    assert (error.response.headers.get("x-should-retry") == "true") is retryable
    assert error.response.headers.get("retry-after") == "7"


def test_429_without_explicit_retry_after_still_sends_one(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(**msg("x"), extra_headers={"x-sim-fault": "429"})
    assert caught.value.response.headers["retry-after"] == "1"


def test_reset_fault_is_a_connection_error(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.APIConnectionError):
        client.messages.create(**msg("x"), extra_headers={"x-sim-fault": "reset"})


def test_directive_fault(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.OverloadedError) as caught:
        client.messages.create(**msg("[[sim:fault=529]] hello"))
    assert caught.value.body["error"]["message"] == "Overloaded"


def test_slow_first_byte(client: anthropic.Anthropic) -> None:
    started = time.perf_counter()
    client.messages.create(**msg("x"), extra_headers={"x-sim-fault": "slow-first-byte", "x-sim-delay-ms": "300"})
    assert time.perf_counter() - started >= 0.3


def test_midstream_error_ends_stream_without_message_stop(sim_url: str, client: anthropic.Anthropic) -> None:
    status, _, text = stream_raw(sim_url, msg("[[sim:tokens=30]]"), **{"x-sim-fault": "midstream-error",
                                                                   "x-sim-fault-after": "5"})
    events = parse_sse(text)
    assert status == 200 and len(events) == 6
    assert [name for name, _ in events][:3] == ["message_start", "content_block_start", "ping"]
    assert events[-1] == ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    with pytest.raises(anthropic.APIStatusError) as caught:
        with client.messages.stream(**msg("x"), extra_headers={"x-sim-fault": "midstream-error"}) as stream:
            stream.get_final_message()
    assert caught.value.body["error"]["type"] == "overloaded_error"


async def test_midstream_reset_cuts_the_connection(sim_url: str) -> None:
    body = {**msg("[[sim:tokens=30]]"), "stream": True}
    received = b""
    fault = {"x-sim-fault": "midstream-reset", "x-sim-fault-after": "4"}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{sim_url}/v1/messages", json=body, headers=headers(**fault)) as resp:
            assert resp.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                async for chunk in resp.content.iter_any():
                    received += chunk
    assert b"event: content_block_delta" in received and b"message_stop" not in received


def fault_admin(sim_url: str, method: str, body: Any = None) -> tuple[int, Any]:
    """Call /_sim/faults."""
    status, _, data = http(f"{sim_url}/_sim/faults", body, {"content-type": "application/json"}, method)
    return status, data


def test_runtime_per_key_fault_with_count(sim_url: str) -> None:
    client = anthropic.Anthropic(base_url=sim_url, api_key="flaky-key", max_retries=0)
    status, _ = fault_admin(sim_url, "POST", {"api_key": "flaky-key", "kind": "529", "count": 2})
    assert status == 200
    assert fault_admin(sim_url, "GET")[1]["flaky-key"]["count"] == 2
    for _ in range(2):
        with pytest.raises(anthropic.OverloadedError):
            client.messages.create(**msg("x"))
    assert client.messages.create(**msg("x")).content[0].text.endswith("You said: x")
    assert "flaky-key" not in fault_admin(sim_url, "GET")[1]


def test_per_key_midstream_fault_waits_for_a_stream(sim_url: str) -> None:
    fault_admin(sim_url, "POST", {"api_key": "stream-key", "kind": "midstream-error", "count": 1, "after_events": 3})
    assert http(f"{sim_url}/v1/messages", msg("plain"), headers("stream-key"))[0] == 200
    _, _, text = stream_raw(sim_url, msg("now"), key="stream-key")
    assert parse_sse(text)[-1][0] == "error"
    _, _, text = stream_raw(sim_url, msg("again"), key="stream-key")
    assert parse_sse(text)[-1][0] == "message_stop"


def test_clearing_faults_and_bad_fault_specs(sim_url: str) -> None:
    fault_admin(sim_url, "POST", {"api_key": "forever-key", "kind": "500"})
    assert http(f"{sim_url}/v1/messages", msg("x"), headers("forever-key"))[0] == 500
    assert fault_admin(sim_url, "DELETE")[0] == 204
    assert http(f"{sim_url}/v1/messages", msg("x"), headers("forever-key"))[0] == 200
    assert fault_admin(sim_url, "POST", {"api_key": "k", "kind": "explode"})[0] == 400
    status, _, error = http(f"{sim_url}/v1/messages", msg("x"), headers(**{"x-sim-fault": "explode"}))
    assert status == 400 and error["error"]["message"].startswith("x-sim-fault: unknown fault kind")


def test_config_fault_for_revoked_key() -> None:
    with running_sim(SimConfig(faults={"revoked-key": Fault("403", count=1)})) as url:
        client = anthropic.Anthropic(base_url=url, api_key="revoked-key", max_retries=0)
        with pytest.raises(anthropic.PermissionDeniedError) as caught:
            client.models.list()
        assert caught.value.body["error"]["message"] == "This organization has been disabled."
        assert client.models.list().data


def test_rpm_limit_answers_429_with_retry_after() -> None:
    with running_sim(SimConfig(rpm_limit=2)) as url:
        assert [http(f"{url}/v1/messages", msg("x"))[0] for _ in range(2)] == [200, 200]
        status, hdrs, error = http(f"{url}/v1/messages", msg("x"))
        assert status == 429 and error["error"]["type"] == "rate_limit_error"
        assert 1 <= int(hdrs["retry-after"]) <= 30 and hdrs["anthropic-ratelimit-requests-limit"] == "2"
        assert hdrs["anthropic-ratelimit-requests-remaining"] == "0"
        assert http(f"{url}/v1/messages", msg("x"), headers("another-key"))[0] == 200


# --- pacing, recording, cancellation ------------------------------------------------------------

def test_latency_and_time_to_first_token() -> None:
    with running_sim(SimConfig(latency_ms=100, ttft_ms=400, tokens_per_sec=1000)) as url:
        client = anthropic.Anthropic(base_url=url, api_key="k", max_retries=0)
        started = time.perf_counter()
        with client.messages.stream(**msg("[[sim:tokens=6]]")) as stream:
            stream_iter = iter(stream)
            event = next(stream_iter)
            assert event.type == "message_start"
            headers_at = time.perf_counter() - started
            first_text = next(e for e in stream_iter if e.type == "content_block_delta")
            text_at = time.perf_counter() - started
        assert first_text.delta.text
        assert 0.1 <= headers_at < 0.4 and text_at >= 0.5


def test_recording_and_stats(sim_url: str) -> None:
    assert http(f"{sim_url}/_sim/requests", method="DELETE")[0] == 204
    body = msg("record me")
    http(f"{sim_url}/v1/messages?beta=true", body, headers("rec-key", **{"anthropic-beta": "a-1,b-2"}))
    http(f"{sim_url}/v1/models", hdrs=headers("rec-key"), method="GET")
    http(f"{sim_url}/", method="HEAD")  # not /v1: not recorded
    _, _, records = http(f"{sim_url}/_sim/requests", method="GET")
    first = records[0]
    assert (first["method"], first["path"], first["query"], first["api_key"]) == \
        ("POST", "/v1/messages", "beta=true", "rec-key")
    assert first["headers"]["anthropic-beta"] == "a-1,b-2" and first["headers"]["x-api-key"] == "rec-key"
    assert json.loads(base64.b64decode(first["body_b64"])) == body
    assert records[1]["path"] == "/v1/models" and records[1]["body_b64"] == ""
    _, _, stats = http(f"{sim_url}/_sim/stats", method="GET")
    assert stats["requests"] == 2 and stats["by_path"] == {"/v1/messages": 1, "/v1/models": 1}
    assert stats["by_key"] == {"rec-key": 2}


def test_record_limit_keeps_the_newest() -> None:
    with running_sim(SimConfig(record_limit=2)) as url:
        for text in ("one", "two", "three"):
            http(f"{url}/v1/messages", msg(text))
        _, _, records = http(f"{url}/_sim/requests", method="GET")
        assert [json.loads(base64.b64decode(r["body_b64"]))["messages"][0]["content"] for r in records] == \
            ["two", "three"]


async def test_client_hang_up_cancels_the_stream() -> None:
    runner, port = await start_sim("127.0.0.1", 0, SimConfig(tokens_per_sec=50))
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            resp = await session.post(f"{url}/v1/messages", json={**msg("[[sim:tokens=500]]"), "stream": True},
                                      headers=headers())
            assert b"message_start" in await resp.content.readuntil(b"\n\n")
            async with session.get(f"{url}/_sim/stats") as stats_resp:
                assert (await stats_resp.json())["open_streams"] == 1
            resp.close()
            for _ in range(100):
                async with session.get(f"{url}/_sim/stats") as stats_resp:
                    stats = await stats_resp.json()
                if stats["cancelled_streams"]:
                    break
                await asyncio.sleep(0.02)
        assert stats["cancelled_streams"] == 1 and stats["open_streams"] == 0 and stats["completed_streams"] == 0
    finally:
        await runner.cleanup()
