"""OpenAI Chat Completions <-> Anthropic Messages translation (anthropic-api.md §8)."""

from __future__ import annotations

import copy
import json

import httpx2
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from ccgate.dialects.openai_request import (
    JSON_OBJECT_INSTRUCTION,
    REASONING_EFFORTS,
    TranslationError,
    to_anthropic_request,
)
from ccgate.dialects.openai_response import (
    openai_usage,
    to_openai_response,
)
from ccgate.dialects.openai_stream import DONE, KEEP_ALIVE, ChunkTranslator, encode
from strategies import (
    MODEL,
    anthropic_message,
    anthropic_messages,
    assert_valid_request,
    assistant,
    call,
    count_blocks,
    count_parts,
    openai_requests,
    render_stream,
    text,
    tool_calls_of,
    user,
)

CREATED = 1770864532


def translate(**fields: object) -> dict:
    """The Anthropic request for a one-user-message OpenAI request plus `fields`."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], **fields}
    return to_anthropic_request(body, default_max_tokens=4096)


def translate_messages(*messages: dict, **fields: object) -> dict:
    return translate(messages=list(messages), **fields)


WEATHER_TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
EPHEMERAL = {"type": "ephemeral"}


# --- requests: examples --------------------------------------------------------------------------


def test_minimal_request_passes_model_and_uses_default_max_tokens() -> None:
    assert translate() == {
        "model": MODEL,
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": [text("Hi")]}],
    }


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"max_completion_tokens": 100, "max_tokens": 200}, 100),
        ({"max_completion_tokens": None, "max_tokens": 200}, 200),
        ({}, 4096),
    ],
)
def test_max_tokens_precedence(fields: dict, expected: int) -> None:
    assert translate(**fields)["max_tokens"] == expected


def test_system_and_developer_messages_are_hoisted_from_anywhere_and_joined() -> None:
    request = translate_messages(
        {"role": "system", "content": "Be brief."},
        user("Hi"),
        {"role": "developer", "content": [text("Use French."), text("No emoji.")], "name": "ignored"},
        assistant("Salut"),
        {"role": "system", "content": ""},
        user("Ça va ?"),
    )
    assert request["system"] == "Be brief.\nUse French.\nNo emoji."
    assert [turn["role"] for turn in request["messages"]] == ["user", "assistant", "user"]


def test_system_blocks_keep_cache_control() -> None:
    request = translate_messages(
        {"role": "system", "content": [text("Long context", cache_control=EPHEMERAL)]},
        {"role": "developer", "content": "Be brief."},
        user("Hi"),
    )
    assert request["system"] == [text("Long context", cache_control=EPHEMERAL), text("Be brief.")]


@pytest.mark.parametrize(
    ("stop", "expected"),
    [("END", ["END"]), (["END", " ", "\n\t", "STOP"], ["END", "STOP"]), (["  "], None), ([], None), (None, None)],
)
def test_stop_becomes_stop_sequences_without_whitespace_only_entries(stop: object, expected: list | None) -> None:
    assert translate(stop=stop).get("stop_sequences") == expected


@pytest.mark.parametrize(("value", "expected"), [(0, 0.0), (0.3, 0.3), (1, 1.0), (1.7, 1.0), (2, 1.0), (-1, 0.0)])
def test_temperature_is_clamped_to_0_1(value: float, expected: float) -> None:
    assert translate(temperature=value)["temperature"] == expected


def test_top_p_alone_is_passed_and_dropped_next_to_temperature() -> None:
    assert translate(top_p=0.9)["top_p"] == 0.9
    both = translate(top_p=0.9, temperature=0.5)
    assert both["temperature"] == 0.5 and "top_p" not in both


def test_n_1_is_accepted() -> None:
    assert "n" not in translate(n=1)


def test_user_becomes_metadata_user_id() -> None:
    assert translate(user="user-7f3a")["metadata"] == {"user_id": "user-7f3a"}


def test_stream_true_streams_and_stream_options_and_unknown_fields_are_not_forwarded() -> None:
    request = translate(stream=True, stream_options={"include_usage": True}, seed=7, logprobs=False, store=True)
    assert request["stream"] is True
    assert set(request) == {"model", "max_tokens", "messages", "stream"}
    assert "stream" not in translate(stream=False)


def test_tools_and_legacy_functions_become_anthropic_tools() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    request = translate(
        tools=[
            {"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": schema,
                                              "strict": True}},
            {"type": "function", "function": {"name": "now"}},
        ],
        functions=[{"name": "legacy", "description": "Old style", "parameters": schema}],
    )
    assert request["tools"] == [
        {"name": "get_weather", "description": "Weather", "input_schema": schema},
        {"name": "now", "input_schema": {"type": "object", "properties": {}}},
        {"name": "legacy", "description": "Old style", "input_schema": schema},
    ]
    assert "tool_choice" not in request


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"tool_choice": "auto"}, {"type": "auto"}),
        ({"tool_choice": "none"}, {"type": "none"}),
        ({"tool_choice": "required"}, {"type": "any"}),
        ({"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
         {"type": "tool", "name": "get_weather"}),
        ({"function_call": "none"}, {"type": "none"}),
        ({"function_call": {"name": "get_weather"}}, {"type": "tool", "name": "get_weather"}),
        ({"tool_choice": "required", "function_call": "none"}, {"type": "any"}),
        ({"parallel_tool_calls": False}, {"type": "auto", "disable_parallel_tool_use": True}),
        ({"parallel_tool_calls": False, "tool_choice": "required"}, {"type": "any", "disable_parallel_tool_use": True}),
        ({"parallel_tool_calls": False, "tool_choice": "none"}, {"type": "none"}),
        ({"parallel_tool_calls": True}, None),
    ],
)
def test_tool_choice(fields: dict, expected: dict | None) -> None:
    assert translate(tools=[WEATHER_TOOL], **fields).get("tool_choice") == expected


def test_non_forcing_tool_choice_without_tools_is_dropped() -> None:
    request = translate(tool_choice="auto", parallel_tool_calls=False)
    assert "tool_choice" not in request and "tools" not in request


def test_assistant_tool_calls_and_tool_results_merge_into_one_user_turn_results_first() -> None:
    request = translate_messages(
        user("Weather in Paris and Rome?"),
        assistant(None, tool_calls=[call("call_1"), call("call_2", arguments='{"city": "Rome"}')]),
        {"role": "tool", "tool_call_id": "call_1", "content": "15C", "name": "ignored"},
        {"role": "tool", "tool_call_id": "call_2", "content": [text("18C", cache_control=EPHEMERAL)]},
        user("And tomorrow?"),
        tools=[WEATHER_TOOL],
    )
    assert request["messages"][1:] == [
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Rome"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": [text("15C")]},
            {"type": "tool_result", "tool_use_id": "call_2", "content": [text("18C", cache_control=EPHEMERAL)]},
            text("And tomorrow?"),
        ]},
    ]


def test_user_text_before_tool_results_is_moved_after_them() -> None:
    request = translate_messages(
        user("Go"), assistant(None, tool_calls=[call("call_1")]), user("(waiting)"),
        {"role": "tool", "tool_call_id": "call_1", "content": ""},
    )
    assert request["messages"][2]["content"] == [{"type": "tool_result", "tool_use_id": "call_1"}, text("(waiting)")]


def test_assistant_text_comes_before_its_tool_calls_and_blank_arguments_mean_no_input() -> None:
    request = translate_messages(
        user("Time?"), assistant([text("Checking."), {"type": "refusal", "refusal": "x"}],
                                 tool_calls=[call("call_1", "now", "")]),
        {"role": "tool", "tool_call_id": "call_1", "content": "noon"},
    )
    assert request["messages"][1]["content"] == [text("Checking."),
                                                 {"type": "tool_use", "id": "call_1", "name": "now", "input": {}}]


def test_legacy_function_call_and_function_message_pair_up() -> None:
    request = translate_messages(
        user("Weather?"),
        assistant(None, function_call={"name": "get_weather", "arguments": '{"city": "Oslo"}'}),
        {"role": "function", "name": "get_weather", "content": "-3C"},
    )
    tool_use = request["messages"][1]["content"][0]
    assert tool_use == {"type": "tool_use", "id": tool_use["id"], "name": "get_weather", "input": {"city": "Oslo"}}
    assert request["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": tool_use["id"], "content": [text("-3C")]}
    ]


def test_consecutive_same_role_turns_merge_and_empty_ones_vanish() -> None:
    request = translate_messages(user("a"), user([text("b")]), assistant("c"), assistant(""), assistant([text("d")]),
                                 user(""), user("e"))
    assert request["messages"] == [
        {"role": "user", "content": [text("a"), text("b")]},
        {"role": "assistant", "content": [text("c"), text("d")]},
        {"role": "user", "content": [text("e")]},
    ]


def test_images_become_base64_or_url_blocks_with_cache_control() -> None:
    request = translate_messages(user([
        {"type": "image_url", "image_url": {"url": "data:image/webp;base64,UklGRg=="}, "cache_control": EPHEMERAL},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg", "detail": "high"}},
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
        text("What is this?", cache_control=EPHEMERAL),
    ]))
    assert request["messages"][0]["content"] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/webp", "data": "UklGRg=="},
         "cache_control": EPHEMERAL},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
        text("What is this?", cache_control=EPHEMERAL),
    ]


@pytest.mark.parametrize(("effort", "budget"), [(e, b) for e, (b, _) in REASONING_EFFORTS.items()])
def test_reasoning_effort_enables_thinking_below_max_tokens_and_drops_sampling(effort: str, budget: int) -> None:
    request = translate(reasoning_effort=effort, max_tokens=32000, temperature=0.2, top_p=0.5)
    assert request["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert request["max_tokens"] == 32000
    assert "temperature" not in request and "top_p" not in request


def test_reasoning_effort_raises_max_tokens_above_the_budget() -> None:
    request = translate(reasoning_effort="high", max_completion_tokens=500)
    assert request["thinking"]["budget_tokens"] == 16384 and request["max_tokens"] == 16384 + 500


def test_reasoning_effort_on_an_adaptive_only_model_uses_adaptive_thinking_and_effort() -> None:
    request = translate(model="claude-opus-4-7", reasoning_effort="medium", temperature=0.5,
                        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {}}})
    assert request["thinking"] == {"type": "adaptive"}
    assert request["output_config"] == {"format": {"type": "json_schema", "schema": {}}, "effort": "medium"}
    assert "temperature" not in request


def test_reasoning_effort_none_or_mid_tool_loop_leaves_thinking_off() -> None:
    assert "thinking" not in translate(reasoning_effort="none")
    mid_loop = translate_messages(user("Go"), assistant(None, tool_calls=[call("call_1")]),
                                  {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
                                  reasoning_effort="high", tools=[WEATHER_TOOL])
    assert "thinking" not in mid_loop


def test_response_format_json_object_adds_a_system_instruction() -> None:
    plain = translate_messages({"role": "system", "content": "Be brief."}, user("Hi"),
                               response_format={"type": "json_object"})
    assert plain["system"] == f"Be brief.\n{JSON_OBJECT_INSTRUCTION}"
    cached = translate_messages({"role": "system", "content": [text("Ctx", cache_control=EPHEMERAL)]}, user("Hi"),
                                response_format={"type": "json_object"})
    assert cached["system"] == [text("Ctx", cache_control=EPHEMERAL), text(JSON_OBJECT_INSTRUCTION)]


def test_response_format_json_schema_becomes_structured_output_and_text_is_nothing() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": False}
    request = translate(response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema,
                                                                                  "strict": True}})
    assert request["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert set(translate(response_format={"type": "text"})) == {"model", "max_tokens", "messages"}


def test_translation_does_not_touch_the_input() -> None:
    body = {"model": MODEL, "messages": [user([text("Hi", cache_control=EPHEMERAL)])], "tools": [WEATHER_TOOL],
            "parallel_tool_calls": False, "reasoning_effort": "low", "response_format": {"type": "json_object"}}
    snapshot = copy.deepcopy(body)
    to_anthropic_request(body, default_max_tokens=1000)
    assert body == snapshot


def test_a_request_sent_by_the_openai_sdk_translates() -> None:
    """The body the real openai client puts on the wire, not a hand-written one."""
    captured: list[dict] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        captured.append(json.loads(request.content))
        return httpx2.Response(200, json=to_openai_response(anthropic_message([{"type": "text", "text": "ok"}]),
                                                           created=CREATED))

    client = openai.OpenAI(api_key="k", base_url="http://gw/v1", http_client=httpx2.Client(
        transport=httpx2.MockTransport(handler)))
    completion = client.chat.completions.create(
        model=MODEL, messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        tools=[WEATHER_TOOL], tool_choice="required", max_completion_tokens=64, temperature=1.5, stop="END",
    )
    assert completion.choices[0].message.content == "ok"
    assert to_anthropic_request(captured[0], default_max_tokens=4096) == {
        "model": MODEL, "max_tokens": 64, "system": "Be brief.",
        "messages": [{"role": "user", "content": [text("Hi")]}], "temperature": 1.0, "stop_sequences": ["END"],
        "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}], "tool_choice": {"type": "any"},
    }


# --- requests: errors ----------------------------------------------------------------------------

BAD_REQUESTS = [
    ({"model": None}, "model", "field required"),
    ({"model": 3}, "model", "expected a string"),
    ({"model": ""}, "model", "must not be empty"),
    ({"messages": None}, "messages", "field required"),
    ({"messages": "Hi"}, "messages", "expected an array"),
    ({"messages": []}, "messages", "at least one user or assistant message"),
    ({"messages": [{"role": "system", "content": "only"}]}, "messages", "at least one user or assistant message"),
    ({"messages": ["Hi"]}, "messages[0]", "expected an object"),
    ({"messages": [{"content": "Hi"}]}, "messages[0].role", "field required"),
    ({"messages": [{"role": "bot", "content": "Hi"}]}, "messages[0].role", "unknown role 'bot'"),
    ({"messages": [user(5)]}, "messages[0].content", "expected a string, an array of content parts or null"),
    ({"messages": [user([{"type": "video"}])]}, "messages[0].content[0].type", "unsupported content part type"),
    ({"messages": [user([{"text": "x"}])]}, "messages[0].content[0].type", "field required"),
    ({"messages": [user([{"type": "text", "text": 1}])]}, "messages[0].content[0].text", "expected a string"),
    ({"messages": [user([text("x", cache_control="yes")])]}, "messages[0].content[0].cache_control",
     "expected an object"),
    ({"messages": [user([{"type": "image_url", "image_url": {"url": "ftp://x/a.png"}}])]},
     "messages[0].content[0].image_url.url", "base64 data URL or an http(s) URL"),
    ({"messages": [user([{"type": "image_url", "image_url": {"url": "data:image/png,abc"}}])]},
     "messages[0].content[0].image_url.url", "base64 data URL"),
    ({"messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://a"}}]}]},
     "messages[0].content[0].type", "unsupported content part type 'image_url'"),
    ({"messages": [user("x"), assistant(None, tool_calls=[call("c", arguments='{"city": ')])]},
     "messages[1].tool_calls[0].function.arguments", "malformed JSON"),
    ({"messages": [user("x"), assistant(None, tool_calls=[call("c", arguments="[1]")])]},
     "messages[1].tool_calls[0].function.arguments", "expected a JSON object"),
    ({"messages": [user("x"), assistant(None, tool_calls=[{"type": "function", "function": {"name": "f"}}])]},
     "messages[1].tool_calls[0].id", "field required"),
    ({"messages": [user("x"), assistant(None, tool_calls=[{**call("c"), "type": "custom"}])]},
     "messages[1].tool_calls[0].type", "only function tool calls"),
    ({"messages": [user("x"), assistant(None, tool_calls={"id": "c"})]}, "messages[1].tool_calls",
     "expected an array"),
    ({"messages": [user("x"), {"role": "tool", "content": "15C"}]}, "messages[1].tool_call_id", "field required"),
    ({"messages": [user("x"), {"role": "function", "name": "f", "content": "1"}]}, "messages[1].role",
     "must follow an assistant function_call"),
    ({"n": 2}, "n", "only n=1 is supported"),
    ({"n": "1"}, "n", "expected an integer"),
    ({"temperature": "hot"}, "temperature", "expected a number"),
    ({"temperature": True}, "temperature", "expected a number"),
    ({"top_p": [1]}, "top_p", "expected a number"),
    ({"max_tokens": 0}, "max_tokens", "must be at least 1"),
    ({"max_completion_tokens": 1.5}, "max_completion_tokens", "expected an integer"),
    ({"stop": 5}, "stop", "expected an array"),
    ({"stop": ["ok", 5]}, "stop[1]", "expected a string"),
    ({"user": 42}, "user", "expected a string"),
    ({"stream": "yes"}, "stream", "expected a boolean"),
    ({"tools": {"name": "f"}}, "tools", "expected an array"),
    ({"tools": [{"type": "custom", "custom": {"name": "f"}}]}, "tools[0].type", "only function tools"),
    ({"tools": [{"type": "function", "function": {"description": "no name"}}]}, "tools[0].function.name",
     "field required"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": "{}"}}]},
     "tools[0].function.parameters", "expected an object"),
    ({"functions": [{"name": 1}]}, "functions[0].name", "expected a string"),
    ({"tools": [WEATHER_TOOL], "tool_choice": "sometimes"}, "tool_choice", "expected 'auto', 'none', 'required'"),
    ({"tools": [WEATHER_TOOL], "tool_choice": {"type": "allowed_tools"}}, "tool_choice.type", "expected 'function'"),
    ({"tools": [WEATHER_TOOL], "tool_choice": {"type": "function", "function": {}}}, "tool_choice.function.name",
     "field required"),
    ({"tool_choice": "required"}, "tool_choice", "needs tools"),
    ({"tools": [WEATHER_TOOL], "parallel_tool_calls": "no"}, "parallel_tool_calls", "expected a boolean"),
    ({"response_format": {"type": "yaml"}}, "response_format.type", "unsupported type 'yaml'"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, "response_format.json_schema.schema",
     "field required"),
    ({"reasoning_effort": "extreme"}, "reasoning_effort", "expected 'none', 'minimal'"),
    ({"reasoning_effort": "low", "tools": [WEATHER_TOOL], "tool_choice": "required"}, "reasoning_effort",
     "cannot be combined"),
]


@pytest.mark.parametrize(("fields", "param", "reason"), BAD_REQUESTS)
def test_invalid_requests_raise_translation_error(fields: dict, param: str, reason: str) -> None:
    with pytest.raises(TranslationError) as caught:
        translate(**fields)
    assert caught.value.param == param
    assert caught.value.message.startswith(f"{param}: ") and reason in caught.value.message
    assert str(caught.value) == caught.value.message


def test_a_body_that_is_not_an_object_is_rejected() -> None:
    with pytest.raises(TranslationError, match="body: expected a JSON object"):
        to_anthropic_request(["model"], default_max_tokens=1)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(openai_requests())
def test_any_valid_openai_request_becomes_a_valid_anthropic_request(body: dict) -> None:
    snapshot = copy.deepcopy(body)
    request = to_anthropic_request(body, default_max_tokens=4096)
    assert body == snapshot
    assert_valid_request(request)
    assert request["model"] == body["model"]
    calls = sum(len(m.get("tool_calls") or []) + ("function_call" in m) for m in body["messages"])
    assert count_blocks(request, "tool_use") == calls
    assert count_blocks(request, "tool_result") == sum(m["role"] in ("tool", "function") for m in body["messages"])
    assert count_blocks(request, "image") == count_parts(body, "image_url")


# --- responses -----------------------------------------------------------------------------------


def test_response_with_text_and_tool_call_matches_the_reference_shape() -> None:
    message = anthropic_message(
        [{"type": "thinking", "thinking": "Let me check...", "signature": "EqQB"},
         {"type": "text", "text": "I'll look that up."},
         {"type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "get_weather",
          "input": {"city": "Paris"}}],
        "tool_use",
        {"input_tokens": 472, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 89},
    )
    response = to_openai_response(message, created=CREATED)
    assert response == {
        "id": "chatcmpl-msg_01XFDUDYJgAACzvnptvVoYEL",
        "object": "chat.completion",
        "created": CREATED,
        "model": "claude-sonnet-4-5-20250929",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": "I'll look that up.", "refusal": None, "tool_calls": [
                {"id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
            "logprobs": None,
            "finish_reason": "tool_calls",
        }],
        "usage": {"prompt_tokens": 472, "completion_tokens": 89, "total_tokens": 561,
                  "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}},
    }
    ChatCompletion.model_validate(response)


def test_response_text_blocks_are_joined_and_no_text_means_null_content() -> None:
    joined = to_openai_response(anthropic_message([text("Hello, "), text("world")]), created=CREATED)
    assert joined["choices"][0]["message"] == {"role": "assistant", "content": "Hello, world", "refusal": None}
    only_tool = to_openai_response(
        anthropic_message([{"type": "tool_use", "id": "toolu_1", "name": "now", "input": {}}], "tool_use"),
        created=CREATED)
    assert only_tool["choices"][0]["message"]["content"] is None
    assert only_tool["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == "{}"


@pytest.mark.parametrize(
    ("stop_reason", "expected"),
    [("end_turn", "stop"), ("stop_sequence", "stop"), ("pause_turn", "stop"), ("max_tokens", "length"),
     ("model_context_window_exceeded", "length"), ("tool_use", "tool_calls"), ("refusal", "content_filter"),
     ("some_future_reason", "stop")],
)
def test_finish_reason_mapping(stop_reason: str, expected: str) -> None:
    response = to_openai_response(anthropic_message([text("x")], stop_reason), created=CREATED)
    assert response["choices"][0]["finish_reason"] == expected


def test_usage_counts_cached_input_in_prompt_tokens_and_thinking_as_reasoning() -> None:
    usage = {"input_tokens": 10, "cache_creation_input_tokens": 200, "cache_read_input_tokens": 3000,
             "output_tokens": 50, "output_tokens_details": {"thinking_tokens": 30}, "service_tier": "standard"}
    assert openai_usage(usage) == {"prompt_tokens": 3210, "completion_tokens": 50, "total_tokens": 3260,
                                   "prompt_tokens_details": {"cached_tokens": 3000},
                                   "completion_tokens_details": {"reasoning_tokens": 30}}
    assert openai_usage({"input_tokens": 3, "cache_read_input_tokens": None, "output_tokens": 1})["total_tokens"] == 4


# --- streams: examples ---------------------------------------------------------------------------

MESSAGE_START = {"type": "message_start", "message": {
    "model": "claude-haiku-4-5-20251001", "id": "msg_01BiHaB6TfwQ4SrYoHQQBE7h", "type": "message",
    "role": "assistant", "content": [], "stop_reason": None, "stop_sequence": None,
    "usage": {"input_tokens": 27, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
              "output_tokens": 1, "service_tier": "standard"}}}
TEXT_EVENTS = [
    MESSAGE_START,
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "ping"},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "g"}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "ato, luna, café"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
     "usage": {"input_tokens": 27, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
               "output_tokens": 9}},
    {"type": "message_stop"},
]


def chunk(delta: dict, finish_reason: str | None = None, **extra: object) -> dict:
    return {"id": "chatcmpl-msg_01BiHaB6TfwQ4SrYoHQQBE7h", "object": "chat.completion.chunk", "created": CREATED,
            "model": "claude-haiku-4-5-20251001",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}], **extra}


def translate_stream(events: list[dict], *, include_usage: bool) -> list[dict]:
    translator = ChunkTranslator(created=CREATED, include_usage=include_usage)
    return [c for event in events for c in translator.feed(event)]


def test_text_stream_with_usage() -> None:
    assert translate_stream(TEXT_EVENTS, include_usage=True) == [
        chunk({"role": "assistant", "content": ""}, usage=None),
        chunk({"content": "g"}, usage=None),
        chunk({"content": "ato, luna, café"}, usage=None),
        chunk({}, "stop", usage=None),
        {**chunk({}), "choices": [], "usage": {
            "prompt_tokens": 27, "completion_tokens": 9, "total_tokens": 36,
            "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}}},
    ]


def test_text_stream_without_usage_has_no_usage_key_and_no_usage_chunk() -> None:
    chunks = translate_stream(TEXT_EVENTS, include_usage=False)
    assert chunks[-1] == chunk({}, "stop") and len(chunks) == 4
    assert all("usage" not in c for c in chunks)


def test_tool_calls_are_numbered_among_tool_calls_and_thinking_is_dropped() -> None:
    events = [
        MESSAGE_START,
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "",
                                                                      "signature": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Hmm"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "EqQB"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Checking."}},
        {"type": "content_block_stop", "index": 1},
        *[event for index, (tool_id, city) in enumerate([("toolu_a", "Paris"), ("toolu_b", "Rome")], start=2)
          for event in (
              {"type": "content_block_start", "index": index,
               "content_block": {"type": "tool_use", "id": tool_id, "name": "get_weather", "input": {}}},
              {"type": "content_block_delta", "index": index,
               "delta": {"type": "input_json_delta", "partial_json": ""}},
              {"type": "content_block_delta", "index": index,
               "delta": {"type": "input_json_delta", "partial_json": f'{{"city": "{city}"}}'}},
              {"type": "content_block_stop", "index": index})],
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 89}},
        {"type": "message_stop"},
    ]
    assert translate_stream(events, include_usage=False) == [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Checking."}),
        chunk({"tool_calls": [{"index": 0, "id": "toolu_a", "type": "function",
                               "function": {"name": "get_weather", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": "Paris"}'}}]}),
        chunk({"tool_calls": [{"index": 1, "id": "toolu_b", "type": "function",
                               "function": {"name": "get_weather", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 1, "function": {"arguments": '{"city": "Rome"}'}}]}),
        chunk({}, "tool_calls"),
    ]


def test_stream_usage_combines_message_start_with_the_last_message_delta() -> None:
    start = copy.deepcopy(MESSAGE_START)
    start["message"]["usage"] |= {"input_tokens": 5, "cache_read_input_tokens": 1000}
    events = [start,
              {"type": "message_delta", "delta": {"stop_reason": None}, "usage": {"output_tokens": 3}},
              {"type": "message_delta", "delta": {"stop_reason": "max_tokens"},
               "usage": {"output_tokens": 40, "cache_creation_input_tokens": 7, "input_tokens": None,
                         "output_tokens_details": {"thinking_tokens": 12}}},
              {"type": "message_stop"}]
    chunks = translate_stream(events, include_usage=True)
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]] == [None, "length"]
    assert chunks[-1]["usage"] == {"prompt_tokens": 1012, "completion_tokens": 40, "total_tokens": 1052,
                                   "prompt_tokens_details": {"cached_tokens": 1000},
                                   "completion_tokens_details": {"reasoning_tokens": 12}}


def test_mid_stream_error_becomes_an_openai_error_chunk() -> None:
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert translate_stream([MESSAGE_START, error], include_usage=True)[-1] == {
        "error": {"message": "Overloaded", "type": "service_unavailable", "param": None, "code": None}}


def test_unknown_events_and_deltas_are_ignored() -> None:
    events = [MESSAGE_START, {"type": "future_event"},
              {"type": "content_block_delta", "index": 0, "delta": {"type": "citations_delta", "citation": {}}}]
    assert len(translate_stream(events, include_usage=False)) == 1


def test_sse_framing() -> None:
    assert encode({"a": "é"}) == 'data: {"a":"é"}\n\n'.encode()
    assert DONE == b"data: [DONE]\n\n"
    assert KEEP_ALIVE == b": keep-alive\n\n"


def sse_client(body: bytes) -> openai.OpenAI:
    """An openai client whose every request is answered with `body` as an event stream."""
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=body, headers={"content-type": "text/event-stream"})

    return openai.OpenAI(api_key="k", base_url="http://gw/v1",
                         http_client=httpx2.Client(transport=httpx2.MockTransport(handler)))


def test_the_openai_sdk_reads_the_encoded_stream_and_skips_keep_alives() -> None:
    chunks = translate_stream(TEXT_EVENTS, include_usage=True)
    body = KEEP_ALIVE + b"".join(encode(c) + KEEP_ALIVE for c in chunks) + DONE
    stream = sse_client(body).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}],
                                                      stream=True, stream_options={"include_usage": True})
    received = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in received if c.choices) == "gato, luna, café"
    assert received[-1].usage is not None and received[-1].usage.total_tokens == 36


def test_the_openai_sdk_raises_on_the_error_chunk() -> None:
    chunks = translate_stream([MESSAGE_START, {"type": "error", "error": {"type": "api_error", "message": "boom"}}],
                              include_usage=False)
    stream = sse_client(b"".join(map(encode, chunks)) + DONE).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hi"}], stream=True)
    with pytest.raises(openai.APIError, match="boom"):
        list(stream)


# --- streams: property ---------------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(anthropic_messages(), st.booleans(), st.data())
def test_an_accumulated_stream_equals_the_translated_whole_response(message: dict, include_usage: bool,
                                                                    data: st.DataObject) -> None:
    chunks = translate_stream(render_stream(message, data.draw), include_usage=include_usage)
    assert all(json.loads(encode(c).removeprefix(b"data: ")) == c for c in chunks)
    state = ChatCompletionStreamState()
    for c in chunks:
        state.handle_chunk(ChatCompletionChunk.model_validate(c))
    streamed = state.current_completion_snapshot  # get_final_completion() raises on length and content_filter
    whole = ChatCompletion.model_validate(to_openai_response(message, created=CREATED))

    assert (streamed.id, streamed.created, streamed.model) == (whole.id, whole.created, whole.model)
    streamed_choice, whole_choice = streamed.choices[0], whole.choices[0]
    assert streamed_choice.finish_reason == whole_choice.finish_reason
    assert (streamed_choice.message.content or None) == whole_choice.message.content
    assert tool_calls_of(streamed_choice.message) == tool_calls_of(whole_choice.message)
    assert streamed.usage == (whole.usage if include_usage else None)
