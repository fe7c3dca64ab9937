"""Issue 2: the Anthropic Messages API through ccgate, with the official SDK, against `ccgate sim`."""

from __future__ import annotations

import base64
import json

import anthropic
import pytest

from helpers import PNG_1X1, list_price_micro, raw, usage_of


@pytest.fixture
def client(gateway, api_key) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key=api_key, base_url=gateway.url, max_retries=0)


def test_text_message_is_answered_and_billed_at_list_price(gateway, api_key, client):
    message = client.messages.create(model="claude-sonnet-4-6", max_tokens=512,
                                     messages=[{"role": "user", "content": "Hello, world!"}])
    assert message.content[0].text
    assert message.model == "claude-sonnet-4-6"
    request_id = message._request_id
    assert request_id.startswith("req_")
    usage = usage_of(gateway, api_key, request_id)
    assert usage["input_tokens"] == message.usage.input_tokens
    assert usage["output_tokens"] == message.usage.output_tokens
    assert usage["model"] == "claude-sonnet-4-6"
    assert usage["cost_micro"] == list_price_micro("claude-sonnet-4-6", message.usage.model_dump())
    assert usage["cost_micro"] > 0


def test_base_url_ending_in_v1_works_as_the_seed_shows(gateway, api_key):
    client = anthropic.Anthropic(api_key=api_key, base_url=gateway.url + "/v1", max_retries=0)
    message = client.messages.create(model="claude-opus-4-6", max_tokens=64,
                                     messages=[{"role": "user", "content": "Write a haiku about coding"}])
    assert message.content[0].text


def test_bearer_authorization_is_accepted(gateway, api_key):
    client = anthropic.Anthropic(auth_token=api_key, base_url=gateway.url, max_retries=0)
    message = client.messages.create(model="claude-haiku-4-5", max_tokens=64,
                                     messages=[{"role": "user", "content": "Hi"}])
    assert message.model == "claude-haiku-4-5-20251001"


def test_streaming_with_the_sdk_helper_matches_the_ledger(gateway, api_key, client):
    with client.messages.stream(model="claude-sonnet-4-6", max_tokens=1024,
                                messages=[{"role": "user", "content": "Tell me a haiku."}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
        request_id = stream.response.headers["request-id"]
    assert text and text == final.content[0].text
    usage = usage_of(gateway, api_key, request_id)
    assert usage["streamed"] is True
    assert usage["output_tokens"] == final.usage.output_tokens > 1
    assert usage["input_tokens"] == final.usage.input_tokens
    assert usage["cost_micro"] == list_price_micro("claude-sonnet-4-6", final.usage.model_dump())


async def test_async_client_streams_raw_events_in_order(gateway, api_key):
    client = anthropic.AsyncAnthropic(api_key=api_key, base_url=gateway.url, max_retries=0)
    events = []
    stream = await client.messages.create(model="claude-sonnet-4-6", max_tokens=256, stream=True,
                                          messages=[{"role": "user", "content": "Count to three"}])
    async for event in stream:
        events.append(event.type)
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert "content_block_delta" in events and "message_delta" in events
    await client.close()


def test_vision_base64_image(client, sim):
    message = client.messages.create(model="claude-sonnet-4-6", max_tokens=512, messages=[{
        "role": "user",
        "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_1X1}},
            {"type": "text", "text": "What's in this image?"},
        ],
    }])
    assert message.content[0].text
    assert message.usage.input_tokens > 5


def test_tool_use_round_trip(client):
    tools = [{
        "name": "get_weather", "description": "Look up current weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }]
    question = {"role": "user", "content": "Weather in Tokyo?"}
    first = client.messages.create(model="claude-sonnet-4-6", max_tokens=1024, tools=tools, messages=[question])
    assert first.stop_reason == "tool_use"
    call = next(block for block in first.content if block.type == "tool_use")
    assert call.name == "get_weather" and "city" in call.input
    second = client.messages.create(model="claude-sonnet-4-6", max_tokens=1024, tools=tools, messages=[
        question,
        {"role": "assistant", "content": [block.model_dump() for block in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "15C and sunny"}]},
    ])
    assert second.stop_reason == "end_turn"
    assert "15C and sunny" in second.content[0].text


def test_prompt_caching_second_call_reads_the_cache_and_costs_less(gateway, api_key, client):
    context = " ".join(f"fact{i} is the number {i}." for i in range(600))
    def ask(question: str) -> list[dict]:
        return [{"role": "user", "content": [
            {"type": "text", "text": context, "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": question},
        ]}]

    first = client.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=ask("Which fact is 42?"))
    second = client.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=ask("And which is 43?"))
    assert first.usage.cache_creation_input_tokens > 1024
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    first_usage = usage_of(gateway, api_key, first._request_id)
    second_usage = usage_of(gateway, api_key, second._request_id)
    assert first_usage["cache_creation"]["ephemeral_5m_input_tokens"] == first.usage.cache_creation_input_tokens
    assert second_usage["cache_read_input_tokens"] == second.usage.cache_read_input_tokens
    assert second_usage["cost_micro"] < first_usage["cost_micro"]
    assert second_usage["cost_micro"] == list_price_micro("claude-sonnet-4-6", second.usage.model_dump())


def test_count_tokens_is_forwarded(client, sim):
    before = sim.stats()["by_path"].get("/v1/messages/count_tokens", 0)
    counted = client.messages.count_tokens(model="claude-sonnet-4-6",
                                           messages=[{"role": "user", "content": "Hello there, how are you?"}])
    assert counted.input_tokens > 0
    assert sim.stats()["by_path"]["/v1/messages/count_tokens"] == before + 1


def test_models_list_and_alias_lookup(client):
    ids = [model.id for model in client.models.list(limit=1000)]
    for seed_model in ("claude-opus-4-6", "claude-sonnet-4-6", "claude-haiku-4-5-20251001"):
        assert seed_model in ids
    assert client.models.retrieve("claude-haiku-4-5").id == "claude-haiku-4-5-20251001"
    page = client.models.list(limit=2)
    assert len(page.data) == 2 and page.has_more


def test_claude_code_shaped_request_reaches_upstream_byte_for_byte(gateway, api_key, sim):
    body = json.dumps({
        "model": "claude-sonnet-4-6", "max_tokens": 32000, "stream": True,
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.200.abc; cc_entrypoint=cli; cch=1;"},
            {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude.",
             "cache_control": {"type": "ephemeral"}},
        ],
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Greet back.", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3h"},
                {"type": "text", "text": "Hello!"}]},
            {"role": "user", "content": [
                {"type": "text", "text": "what now?", "cache_control": {"type": "ephemeral"}}]},
        ],
        "thinking": {"type": "adaptive"},
        "metadata": {"user_id": "user_" + "a" * 64 + "_account__session_1b4e28ba-2fa1-11d2-883f-0016d3cca427"},
        "context_management": {"edits": []},
        "some_future_field": {"nested": [1, 2.50, "x"]},
    }, indent=1).encode()
    betas = ("claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,"
             "prompt-caching-scope-2026-01-05,effort-2025-11-24,fine-grained-tool-streaming-2025-05-14")
    sim.clear()
    status, headers, payload = raw(gateway, "POST", "/v1/messages?beta=true", body=body, headers={
        "x-api-key": api_key, "anthropic-version": "2023-06-01", "anthropic-beta": betas,
        "content-type": "application/json", "x-claude-code-session-id": "1b4e28ba",
        "user-agent": "claude-cli/2.1.200 (external, cli)",
    })
    assert status == 200
    assert b"event: message_stop" in payload
    seen = sim.requests()[-1]
    assert base64.b64decode(seen["body_b64"]) == body
    assert seen["query"] == "beta=true"
    assert seen["headers"]["anthropic-beta"] == betas
    assert seen["headers"]["anthropic-version"] == "2023-06-01"
    assert seen["headers"]["x-api-key"] == "sk-ant-sim-main"
    assert api_key not in json.dumps(seen["headers"])


def test_every_response_carries_the_same_request_id_twice(gateway, api_key):
    status, headers, _ = raw(gateway, "GET", "/v1/models", headers={"x-api-key": api_key})
    assert status == 200
    assert headers["request-id"].startswith("req_") and headers["request-id"] == headers["x-request-id"]
    status, headers, payload = raw(gateway, "POST", "/v1/messages", body=b"{}", headers={"x-api-key": "nope"})
    assert status == 401 and headers["request-id"] == headers["x-request-id"] == payload["request_id"]


def test_routes_answer_under_v1_v1(gateway, api_key):
    status, _, payload = raw(gateway, "GET", "/v1/v1/models/claude-sonnet-4-6", headers={"x-api-key": api_key})
    assert status == 200 and payload["id"] == "claude-sonnet-4-6"


# -- errors: each in Anthropic's shape, and nothing reaches upstream ---------------------------------

def _assert_anthropic_error(status: int, payload: dict, expected_status: int, error_type: str) -> None:
    assert status == expected_status, payload
    assert payload["type"] == "error"
    assert payload["error"]["type"] == error_type
    assert payload["error"]["message"]
    assert payload["request_id"].startswith("req_")


GOOD = json.dumps({"model": "claude-sonnet-4-6", "max_tokens": 10,
                   "messages": [{"role": "user", "content": "hi"}]}).encode()


@pytest.mark.parametrize("headers, error_type", [
    ({}, "authentication_error"),
    ({"x-api-key": "cc_user_not_a_real_key_at_all_0000000000000"}, "authentication_error"),
    ({"authorization": "Bearer wrong"}, "authentication_error"),
])
def test_missing_or_wrong_key_is_401(gateway, sim, headers, error_type):
    before = sim.stats()["requests"]
    status, _, payload = raw(gateway, "POST", "/v1/messages", body=GOOD,
                             headers={"content-type": "application/json", **headers})
    _assert_anthropic_error(status, payload, 401, error_type)
    assert sim.stats()["requests"] == before


def test_sdk_raises_its_own_exception_classes(gateway, api_key):
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(api_key="wrong", base_url=gateway.url, max_retries=0).models.list()
    client = anthropic.Anthropic(api_key=api_key, base_url=gateway.url, max_retries=0)
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.messages.create(model="claude-nonexistent-9", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert "claude-nonexistent-9" in caught.value.message


@pytest.mark.parametrize("body, fragment", [
    (b"{not json", "parsing the body"),
    (b"[1, 2]", "dictionary"),
    (json.dumps({"model": "claude-sonnet-4-6", "messages": []}).encode(), "max_tokens: Field required"),
    (json.dumps({"model": 7, "max_tokens": 5, "messages": []}).encode(), "model: Input should be a valid string"),
    (json.dumps({"model": "claude-sonnet-4-6", "max_tokens": "5", "messages": []}).encode(), "max_tokens"),
    (json.dumps({"model": "claude-sonnet-4-6", "max_tokens": 5, "messages": "hi"}).encode(), "messages"),
    (json.dumps({"model": "claude-sonnet-4-6", "max_tokens": 5, "messages": [], "stream": "yes"}).encode(), "stream"),
])
def test_malformed_requests_are_400_before_anything_goes_upstream(gateway, api_key, sim, body, fragment):
    before = sim.stats()["requests"]
    status, _, payload = raw(gateway, "POST", "/v1/messages", body=body,
                             headers={"x-api-key": api_key, "content-type": "application/json"})
    _assert_anthropic_error(status, payload, 400, "invalid_request_error")
    assert fragment in payload["error"]["message"]
    assert sim.stats()["requests"] == before


def test_unknown_model_is_404(gateway, api_key):
    body = json.dumps({"model": "gpt-4o", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}).encode()
    status, _, payload = raw(gateway, "POST", "/v1/messages", body=body, headers={"x-api-key": api_key})
    _assert_anthropic_error(status, payload, 404, "not_found_error")
    assert payload["error"]["message"] == "model: gpt-4o"


def test_oversized_body_is_413(gateway, api_key, sim):
    before = sim.stats()["requests"]
    body = b'{"model":"claude-sonnet-4-6","max_tokens":5,"messages":[{"role":"user","content":"' + \
        b"a" * (32 * 1024 * 1024) + b'"}]}'
    status, _, payload = raw(gateway, "POST", "/v1/messages", body=body,
                             headers={"x-api-key": api_key, "content-type": "application/json"})
    _assert_anthropic_error(status, payload, 413, "request_too_large")
    assert sim.stats()["requests"] == before


def test_another_users_request_id_is_404(gateway, api_key, client):
    message = client.messages.create(model="claude-haiku-4-5", max_tokens=16,
                                     messages=[{"role": "user", "content": "mine"}])
    stranger = gateway.new_key("stranger-" + api_key[-6:].lower() + "@example.com")
    status, _, payload = raw(gateway, "GET", f"/v1/usage/{message._request_id}", headers={"x-api-key": stranger})
    _assert_anthropic_error(status, payload, 404, "not_found_error")
    assert usage_of(gateway, api_key, message._request_id)["request_id"] == message._request_id


def test_a_second_key_of_the_same_user_sees_its_usage(gateway, email, api_key, client):
    message = client.messages.create(
        model="claude-haiku-4-5", max_tokens=16, messages=[{"role": "user", "content": "x"}])
    sibling = gateway.new_key(email)
    assert usage_of(gateway, sibling, message._request_id)["output_tokens"] == message.usage.output_tokens
