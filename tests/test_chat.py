"""Issue 3: OpenAI Chat Completions on Claude, with the official `openai` SDK, same key, same rules."""

from __future__ import annotations

import base64
import json

import openai
import pytest

from test_messages import PNG_1X1, list_price_micro, raw, usage_of

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather", "description": "Look up current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture
def client(gateway, api_key) -> openai.OpenAI:
    return openai.OpenAI(api_key=api_key, base_url=gateway.url + "/v1", max_retries=0)


def last_upstream_body(sim) -> dict:
    return json.loads(base64.b64decode(sim.requests()[-1]["body_b64"]))


def test_plain_completion_is_billed_like_the_anthropic_route(gateway, api_key, client):
    response = client.chat.completions.with_raw_response.create(
        model="claude-sonnet-4-6", messages=[{"role": "user", "content": "Hello, world!"}])
    completion = response.parse()
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"
    request_id = response.headers["x-request-id"]
    usage = usage_of(gateway, api_key, request_id)
    assert usage["dialect"] == "openai"
    assert completion.usage.prompt_tokens == usage["input_tokens"]
    assert completion.usage.completion_tokens == usage["output_tokens"]
    assert completion.usage.total_tokens == usage["input_tokens"] + usage["output_tokens"]

    # The same request in Anthropic's dialect (max_tokens as the OpenAI route defaulted it).
    status, headers, same = raw(gateway, "POST", "/v1/messages", headers={"x-api-key": api_key}, body=json.dumps({
        "model": "claude-sonnet-4-6", "max_tokens": 64000,
        "messages": [{"role": "user", "content": "Hello, world!"}]}).encode())
    assert status == 200
    assert same["usage"]["input_tokens"] == usage["input_tokens"]
    assert same["usage"]["output_tokens"] == usage["output_tokens"]
    assert usage_of(gateway, api_key, headers["request-id"])["cost_micro"] == usage["cost_micro"]
    assert usage["cost_micro"] == list_price_micro("claude-sonnet-4-6", same["usage"])


def test_seed_curl_example_verbatim(gateway, api_key):
    body = json.dumps({"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "Hello, world!"}]})
    status, headers, payload = raw(gateway, "POST", "/v1/chat/completions", body=body.encode(), headers={
        "Authorization": f"Bearer {api_key}", "Content-Type": "application/json"})
    assert status == 200, payload
    assert payload["choices"][0]["message"]["content"]
    assert headers["x-request-id"].startswith("req_")


def test_stream_with_include_usage(client):
    stream = client.chat.completions.create(
        model="claude-sonnet-4-6", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Tell me a haiku."}])
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])


def test_stream_without_include_usage_has_no_usage_chunk(client):
    chunks = list(client.chat.completions.create(
        model="claude-haiku-4-5", stream=True, messages=[{"role": "user", "content": "Hi"}]))
    assert all(c.choices for c in chunks)


def test_tool_agent_loop_runs_unchanged(client, sim):
    messages = [{"role": "user", "content": "Weather in Tokyo?"}]
    first = client.chat.completions.create(model="claude-sonnet-4-6", messages=messages, tools=[WEATHER_TOOL])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    assert "city" in arguments
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "21C, clear skies"}]
    second = client.chat.completions.create(model="claude-sonnet-4-6", messages=messages, tools=[WEATHER_TOOL])
    assert second.choices[0].finish_reason == "stop"
    assert "21C, clear skies" in second.choices[0].message.content
    upstream = last_upstream_body(sim)
    assert upstream["messages"][-1]["content"][0]["type"] == "tool_result"
    assert upstream["messages"][-1]["content"][0]["tool_use_id"] == call.id


def test_streamed_tool_call_arguments_parse_as_json(client):
    stream = client.chat.completions.create(model="claude-sonnet-4-6", stream=True, tools=[WEATHER_TOOL],
                                            tool_choice="required",
                                            messages=[{"role": "user", "content": "Weather in Paris?"}])
    ids, names, arguments = set(), [], ""
    for chunk in stream:
        for call in chunk.choices[0].delta.tool_calls or []:
            if call.id:
                ids.add(call.id)
                names.append(call.function.name)
            arguments += call.function.arguments or ""
    assert len(ids) == 1 and names == ["get_weather"]
    assert "city" in json.loads(arguments)


def test_data_url_image(client, sim):
    completion = client.chat.completions.create(model="claude-sonnet-4-6", messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_1X1}"}},
    ]}])
    assert completion.choices[0].message.content
    block = last_upstream_body(sim)["messages"][0]["content"][1]
    assert block == {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_1X1}}


def test_system_and_developer_messages_are_hoisted(client, sim):
    client.chat.completions.create(model="claude-sonnet-4-6", messages=[
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": "Answer in English."},
        {"role": "user", "content": "Hi"},
    ])
    upstream = last_upstream_body(sim)
    assert upstream["system"] == "Be brief.\nAnswer in English."
    assert [m["role"] for m in upstream["messages"]] == ["user"]


def test_prompt_caching_through_cache_control_extension(client):
    context = " ".join(f"rule{i} says {i}." for i in range(700))
    def ask(question: str) -> list[dict]:
        return [{"role": "user", "content": [
            {"type": "text", "text": context, "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": question}]}]

    first = client.chat.completions.create(model="claude-sonnet-4-6", messages=ask("What does rule 7 say?"))
    second = client.chat.completions.create(model="claude-sonnet-4-6", messages=ask("And rule 8?"))
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    assert second.usage.prompt_tokens_details.cached_tokens > 1024
    assert second.usage.prompt_tokens > second.usage.prompt_tokens_details.cached_tokens


def test_response_format_json_schema_becomes_structured_output(client, sim):
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    client.chat.completions.create(model="claude-sonnet-4-6", messages=[{"role": "user", "content": "Hi"}],
                                   response_format={"type": "json_schema",
                                                    "json_schema": {"name": "reply", "schema": schema}})
    assert last_upstream_body(sim)["output_config"]["format"] == {"type": "json_schema", "schema": schema}


def test_n_other_than_one_is_rejected_before_upstream(client, sim):
    before = sim.stats()["requests"]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="claude-sonnet-4-6", n=2, messages=[{"role": "user", "content": "x"}])
    assert caught.value.body["type"] == "invalid_request_error"
    assert "n" in caught.value.message
    assert sim.stats()["requests"] == before


def test_errors_raise_the_sdks_matching_exceptions(gateway, client):
    with pytest.raises(openai.AuthenticationError) as caught:
        openai.OpenAI(api_key="wrong", base_url=gateway.url + "/v1", max_retries=0).chat.completions.create(
            model="claude-sonnet-4-6", messages=[{"role": "user", "content": "x"}])
    assert caught.value.body["type"] == "authentication_error"
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert caught.value.body["type"] == "not_found_error"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="claude-sonnet-4-6", messages="not a list")


def test_error_envelope_is_openais(gateway, api_key):
    status, headers, payload = raw(gateway, "POST", "/v1/chat/completions", body=b"{broken",
                                   headers={"Authorization": f"Bearer {api_key}"})
    assert status == 400
    assert set(payload) == {"error"}
    assert set(payload["error"]) == {"message", "type", "param", "code"}
    assert headers["x-request-id"].startswith("req_")


def test_upstream_client_error_is_passed_on_in_openai_shape(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="claude-sonnet-4-6", temperature=0.5, top_p=0.5,
                                       messages=[{"role": "user", "content": "[[sim:fault=400]]"}])
    assert caught.value.body["type"] == "invalid_request_error"


def test_mid_stream_error_reaches_the_sdk_as_an_api_error(client):
    stream = client.chat.completions.create(model="claude-sonnet-4-6", stream=True, messages=[
        {"role": "user", "content": "[[sim:tokens=50]] [[sim:fault=midstream-error]]"}])
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass


def test_models_parse_in_the_openai_sdk(client):
    models = client.models.list()
    ids = [model.id for model in models]
    assert "claude-sonnet-4-6" in ids
    assert all(model.object == "model" and model.owned_by == "anthropic" and model.created > 0 for model in models)
    assert client.models.retrieve("claude-haiku-4-5").id == "claude-haiku-4-5-20251001"


def test_upstream_pings_become_keep_alive_comments(gateway, api_key):
    body = json.dumps({"model": "claude-sonnet-4-6", "stream": True,
                       "messages": [{"role": "user", "content": "Hello"}]}).encode()
    status, _, payload = raw(gateway, "POST", "/v1/chat/completions", body=body,
                             headers={"Authorization": f"Bearer {api_key}", "content-type": "application/json"})
    assert status == 200
    assert b": keep-alive\n\n" in payload
    assert payload.endswith(b"data: [DONE]\n\n")
    assert b"event:" not in payload
