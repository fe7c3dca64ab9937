"""OpenAI Responses <-> Anthropic Messages translation: properties, and the cases clients depend on."""

from __future__ import annotations

import base64
import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.responses import Response

from ccgate.dialects.openai_request import TranslationError
from ccgate.dialects.responses_request import EFFORTS, encode_reasoning, to_anthropic_request
from ccgate.dialects.responses_response import response_frame, to_response
from ccgate.dialects.responses_stream import ResponseEventTranslator, encode
from ccgate.sim.validate import validate_messages
from strategies import (
    JSON_OBJECTS,
    NAMES,
    anthropic_messages,
    assert_valid_request,
    render_stream,
)

MODELS = ("claude-sonnet-4-6", "claude-opus-4-7", "claude-haiku-4-5")
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
WORDS = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=30)


def translate(**fields: object) -> dict:
    return to_anthropic_request({"model": "claude-sonnet-4-6", "input": "Hi", **fields}, default_max_tokens=4096)


# --- requests: strategies ------------------------------------------------------------------------

USER_PARTS = st.one_of(
    st.builds(lambda text: {"type": "input_text", "text": text}, WORDS),
    st.just({"type": "input_image", "image_url": f"data:image/png;base64,{PNG}", "detail": "auto"}),
    st.just({"type": "input_image", "image_url": "https://example.com/cat.png"}),
    st.just({"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}),
    st.builds(lambda text: {"type": "input_file", "filename": "notes.txt",
                            "file_data": "data:text/plain;base64," + base64.b64encode(text.encode()).decode()}, WORDS),
)
USER_CONTENT = st.one_of(WORDS, st.lists(USER_PARTS, min_size=1, max_size=3))


@st.composite
def conversations(draw: st.DrawFn) -> list[dict]:
    """Input items: user turns, each maybe answered by reasoning, text and function calls whose outputs open the
    next user turn; ending with user input."""
    items: list[dict] = []
    for round_number in range(draw(st.integers(0, 3))):
        items.append({"type": "message", "role": "user", "content": draw(USER_CONTENT)})
        if draw(st.booleans()):
            thinking = {"type": "thinking", "thinking": draw(WORDS), "signature": "EqQB"}
            items.append({"type": "reasoning", "id": f"rs_{round_number}", "summary": [],
                          "encrypted_content": encode_reasoning(thinking)})
        if draw(st.booleans()):
            items.append({"role": "assistant", "content": [
                {"type": "output_text", "text": draw(WORDS), "annotations": []}]})
        calls = [f"call_{round_number}_{i}" for i in range(draw(st.integers(0, 2)))]
        items += [{"type": "function_call", "call_id": call, "name": draw(NAMES),
                   "arguments": json.dumps(draw(JSON_OBJECTS))} for call in calls]
        items += [{"type": "function_call_output", "call_id": call, "output": draw(WORDS)} for call in calls]
    if not items or items[-1].get("type") != "function_call_output" or draw(st.booleans()):
        items.append({"role": draw(st.sampled_from(["user", "developer"])), "content": draw(WORDS)})
        items.append({"role": "user", "content": draw(USER_CONTENT)})
    return items


def function_tools(names: list[str]) -> list[dict]:
    return [{"type": "function", "name": name, "parameters": {"type": "object", "properties": {}}} for name in names]


@st.composite
def responses_requests(draw: st.DrawFn) -> dict:
    body: dict = {"model": draw(st.sampled_from(MODELS)), "input": draw(st.one_of(WORDS, conversations()))}
    names = draw(st.lists(NAMES, max_size=3, unique=True))
    tools = function_tools(names)
    if draw(st.booleans()):
        tools.append({"type": "web_search", "search_context_size": draw(st.sampled_from(["low", "medium", "high"]))})
    if draw(st.booleans()):
        tools.append({"type": "namespace", "name": "agents", "description": "Sub-agents",
                      "tools": function_tools(["spawn"])})
    if tools:
        body["tools"] = tools
        choices = ["auto", "none", "required", *({"type": "function", "name": name} for name in names)]
        body |= draw(st.fixed_dictionaries({}, optional={
            "tool_choice": st.sampled_from(choices), "parallel_tool_calls": st.booleans()}))
    body |= draw(st.fixed_dictionaries({}, optional={
        "instructions": WORDS,
        "max_output_tokens": st.integers(1, 64000),
        "temperature": st.floats(0, 2),
        "top_p": st.floats(0, 1),
        "reasoning": st.fixed_dictionaries({"effort": st.sampled_from(["none", *EFFORTS])},
                                           optional={"summary": st.sampled_from(["auto", "concise", "detailed"])}),
        "text": st.sampled_from([{"format": {"type": "text"}}, {"format": {"type": "json_object"}},
                                 {"format": {"type": "json_schema", "name": "reply", "schema": {"type": "object"}}}]),
        "metadata": st.dictionaries(NAMES, WORDS, max_size=2),
        "user": WORDS, "store": st.booleans(), "stream": st.booleans(), "prompt_cache_key": WORDS,
        "include": st.just(["reasoning.encrypted_content"]), "truncation": st.just("disabled"),
    }))
    return body


def forces_a_tool(body: dict) -> bool:
    choice = body.get("tool_choice")
    return choice == "required" or isinstance(choice, dict)


def thinks(body: dict) -> bool:
    return (body.get("reasoning") or {}).get("effort", "none") != "none"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(responses_requests())
def test_any_valid_responses_request_becomes_a_valid_anthropic_request(body: dict) -> None:
    snapshot = copy.deepcopy(body)
    try:
        request = to_anthropic_request(body, default_max_tokens=4096)
    except TranslationError as error:  # thinking cannot be combined with forced tool use
        assert forces_a_tool(body) and thinks(body) and error.message.startswith("reasoning.effort:")
        return
    assert body == snapshot
    assert_valid_request(request)
    validate_messages(request, frozenset())  # the simulator's reading of Anthropic's rules
    assert request["model"] == body["model"]
    items = body["input"] if isinstance(body["input"], list) else []
    uses = [block for turn in request["messages"] for block in turn["content"] if block["type"] == "tool_use"]
    assert len(uses) == sum(item.get("type") == "function_call" for item in items)


# --- requests: cases -----------------------------------------------------------------------------


def test_a_string_input_and_instructions() -> None:
    assert translate(instructions="Be brief", max_output_tokens=100) == {
        "model": "claude-sonnet-4-6", "max_tokens": 100, "system": "Be brief",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]}


def test_history_from_previous_response_id_comes_first() -> None:
    history = [{"role": "user", "content": [{"type": "text", "text": "Hello"}]},
               {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]}]
    request = to_anthropic_request({"model": "claude-sonnet-4-6", "input": [
        {"type": "function_call_output", "call_id": "toolu_1", "output": "done"}]}, default_max_tokens=10,
        history=history)
    assert request["messages"] == [*history, {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "done"}]}]}]


def test_namespaced_tools_are_flattened_and_called_back_by_their_own_name() -> None:
    body = {"model": "claude-sonnet-4-6", "input": "Hi", "tools": [
        {"type": "namespace", "name": "agents", "description": "Sub-agents", "tools": [
            {"type": "function", "name": "spawn", "description": "Start one", "parameters": {"type": "object"}}]}]}
    assert to_anthropic_request(body, default_max_tokens=10)["tools"] == [
        {"name": "agents__spawn", "description": "Sub-agents\n\nStart one", "input_schema": {"type": "object"}}]
    message = {"id": "msg_1", "model": "claude-sonnet-4-6", "stop_reason": "tool_use", "usage": {},
               "content": [{"type": "tool_use", "id": "toolu_1", "name": "agents__spawn", "input": {}}]}
    call = to_response(message, response_frame(body, response_id="resp_1", created_at=1))["output"][0]
    assert (call["namespace"], call["name"], call["call_id"]) == ("agents", "spawn", "toolu_1")


@pytest.mark.parametrize(("fields", "named"), [
    ({"truncation": "auto"}, "truncation"),
    ({"background": True}, "background"),
    ({"conversation": "conv_1"}, "conversation"),
    ({"prompt": {"id": "pmpt_1"}}, "prompt"),
    ({"max_tool_calls": 3}, "max_tool_calls"),
    ({"service_tier": "flex"}, "service_tier"),
    ({"top_logprobs": 2}, "top_logprobs"),
    ({"include": ["file_search_call.results"]}, "include[0]"),
    ({"text": {"verbosity": "low"}}, "text.verbosity"),
    ({"tools": [{"type": "code_interpreter"}]}, "tools[0].type"),
    ({"tools": [{"type": "web_search", "external_web_access": False}]}, "tools[0].external_web_access"),
    ({"tool_choice": {"type": "allowed_tools", "tools": []}}, "tool_choice.type"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]}]},
     "input[0].content[0].file_id"),
    ({"input": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
     "input[0].content[0].type"),
    ({"input": [{"type": "reasoning", "summary": [], "encrypted_content": "b3BhcXVl"}]},
     "input[0].encrypted_content"),
])
def test_a_field_that_cannot_be_honoured_is_refused_by_name(fields: dict, named: str) -> None:
    with pytest.raises(TranslationError) as caught:
        translate(**fields)
    assert caught.value.message.startswith(named + ":")


def test_thinking_budget_stays_within_the_models_output_limit() -> None:
    request = translate(reasoning={"effort": "xhigh"}, max_output_tokens=32000)
    assert request["max_tokens"] == 64000 and request["thinking"]["budget_tokens"] == 32768


# --- streams: property ---------------------------------------------------------------------------


def translate_stream(events: list[dict], frame: dict) -> tuple[list[dict], ResponseEventTranslator]:
    translator = ResponseEventTranslator(frame)
    return [out for event in events for out in translator.feed(event)], translator


@settings(max_examples=200, deadline=None)
@given(anthropic_messages(), st.booleans(), st.data())
def test_a_translated_stream_ends_with_the_translated_whole_response(message: dict, encrypted: bool,
                                                                     data: st.DataObject) -> None:
    include = ["reasoning.encrypted_content"] if encrypted else []
    body = {"model": "claude-sonnet-4-6", "input": "Hi", "include": include}
    frame = response_frame(body, response_id="resp_01XF", created_at=1770864532)
    events, translator = translate_stream(render_stream(message, data.draw), frame)
    whole = to_response(message, frame)
    Response.model_validate(whole)
    assert translator.response == whole
    assert events[-1]["type"] == ("response.completed" if whole["status"] == "completed" else "response.incomplete")
    assert events[-1]["response"] == whole
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    assert all(json.loads(encode(event).split(b"data: ", 1)[1]) == event for event in events)
    assert [event["item"] for event in events if event["type"] == "response.output_item.done"] == whole["output"]
    for item in whole["output"]:
        deltas = [event["delta"] for event in events if event.get("item_id") == item["id"]
                  and event["type"] in ("response.output_text.delta", "response.function_call_arguments.delta")]
        if item["type"] == "message":
            assert "".join(deltas) == item["content"][0]["text"]
        if item["type"] == "function_call":
            assert json.loads("".join(deltas) or "{}") == json.loads(item["arguments"])
