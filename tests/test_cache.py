"""Issue 6: identical requests answered from the gateway's response cache, in both dialects."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import anthropic
import openai
import pytest

from harness import Gateway
from helpers import key_status, message_body, post, slow, usage_of


def question() -> str:
    return f"What is {uuid.uuid4().hex[:8]}?"


def upstream_count(sim) -> int:
    return sim.stats()["by_path"].get("/v1/messages", 0)


def test_a_repeat_is_a_hit_with_the_same_answer_and_one_upstream_request(gateway, api_key, sim):
    client = anthropic.Anthropic(api_key=api_key, base_url=gateway.url, max_retries=0)
    prompt = [{"role": "user", "content": question()}]
    before = upstream_count(sim)
    first = client.messages.with_raw_response.create(model="claude-sonnet-4-6", max_tokens=256, messages=prompt)
    second = client.messages.with_raw_response.create(model="claude-sonnet-4-6", max_tokens=256, messages=prompt)
    assert upstream_count(sim) == before + 1
    assert first.headers["x-cache"] == "MISS" and second.headers["x-cache"] == "HIT"
    assert 3590 <= int(second.headers["x-cache-ttl"]) <= 3600
    original, replay = first.parse(), second.parse()
    assert replay.content == original.content and replay.stop_reason == original.stop_reason
    assert int(second.headers["x-tokens-saved"]) == original.usage.input_tokens + original.usage.output_tokens
    hit = usage_of(gateway, api_key, second.headers["request-id"])
    miss = usage_of(gateway, api_key, first.headers["request-id"])
    assert hit["cache_hit"] is True and miss["cache_hit"] is False
    assert hit["cost_micro"] == -(-miss["cost_micro"] // 10) < miss["cost_micro"]


def test_openai_dialect_repeat_is_a_hit(gateway, api_key, sim):
    client = openai.OpenAI(api_key=api_key, base_url=gateway.url + "/v1", max_retries=0)
    prompt = [{"role": "user", "content": question()}]
    before = upstream_count(sim)
    first = client.chat.completions.with_raw_response.create(model="claude-haiku-4-5", messages=prompt)
    second = client.chat.completions.with_raw_response.create(model="claude-haiku-4-5", messages=prompt)
    assert upstream_count(sim) == before + 1
    assert second.headers["x-cache"] == "HIT"
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    stream = client.chat.completions.create(model="claude-haiku-4-5", messages=prompt, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
        first.parse().choices[0].message.content
    assert chunks[-1].usage.completion_tokens == first.parse().usage.completion_tokens
    assert upstream_count(sim) == before + 1


def test_a_stream_replays_as_a_stream_whether_the_original_streamed_or_not(gateway, api_key, sim):
    client = anthropic.Anthropic(api_key=api_key, base_url=gateway.url, max_retries=0)
    for original_streamed in (False, True):
        prompt = [{"role": "user", "content": question()}]
        if original_streamed:
            with client.messages.stream(model="claude-sonnet-4-6", max_tokens=256, messages=prompt) as stream:
                original = stream.get_final_message()
        else:
            original = client.messages.create(model="claude-sonnet-4-6", max_tokens=256, messages=prompt)
        before = upstream_count(sim)
        with client.messages.stream(model="claude-sonnet-4-6", max_tokens=256, messages=prompt) as stream:
            text = "".join(stream.text_stream)
            replayed = stream.get_final_message()
            assert stream.response.headers["x-cache"] == "HIT"
        assert text == original.content[0].text and replayed.usage.output_tokens == original.usage.output_tokens
        again = client.messages.create(model="claude-sonnet-4-6", max_tokens=256, messages=prompt)
        assert again.content[0].text == original.content[0].text
        assert upstream_count(sim) == before


def test_a_tool_call_replays_with_its_arguments(gateway, api_key):
    client = anthropic.Anthropic(api_key=api_key, base_url=gateway.url, max_retries=0)
    tools = [{"name": "get_weather", "description": "weather",
              "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
    prompt = [{"role": "user", "content": f"Weather in Oslo? {question()}"}]
    original = client.messages.create(model="claude-sonnet-4-6", max_tokens=256, tools=tools, messages=prompt)
    with client.messages.stream(model="claude-sonnet-4-6", max_tokens=256, tools=tools, messages=prompt) as stream:
        replayed = stream.get_final_message()
        assert stream.response.headers["x-cache"] == "HIT"
    assert [b.model_dump() for b in replayed.content] == [b.model_dump() for b in original.content]


@pytest.mark.parametrize("bypass", [{"x-no-cache": "true"}, {"cache-control": "no-cache"}])
def test_no_cache_headers_bypass_and_reach_upstream(gateway, api_key, sim, bypass):
    body = message_body(text=question())
    assert post(gateway, api_key, body)[1]["x-cache"] == "MISS"
    before = upstream_count(sim)
    status, headers, _ = post(gateway, api_key, body, **bypass)
    assert status == 200 and headers["x-cache"] == "BYPASS"
    assert upstream_count(sim) == before + 1
    client = openai.OpenAI(api_key=api_key, base_url=gateway.url + "/v1", max_retries=0)
    response = client.chat.completions.with_raw_response.create(
        model="claude-haiku-4-5", messages=[{"role": "user", "content": "same"}], extra_headers=bypass)
    assert response.headers["x-cache"] == "BYPASS"


def test_one_users_answer_is_never_served_to_another(gateway, sim):
    body = message_body(text=question())
    first_key = gateway.new_key(f"first-{uuid.uuid4().hex[:6]}@example.com")
    second_key = gateway.new_key(f"second-{uuid.uuid4().hex[:6]}@example.com")
    assert post(gateway, first_key, body)[1]["x-cache"] == "MISS"
    assert post(gateway, first_key, body)[1]["x-cache"] == "HIT"
    before = upstream_count(sim)
    assert post(gateway, second_key, body)[1]["x-cache"] == "MISS"
    assert upstream_count(sim) == before + 1


def test_errored_or_cut_off_answers_are_not_cached(gateway, api_key, sim):
    for text in ("[[sim:fault=400]]", "[[sim:tokens=50]] [[sim:fault=midstream-error]]"):
        body = message_body(max_tokens=100, text=f"{text} {question()}", stream="midstream" in text)
        post(gateway, api_key, body)
        before = upstream_count(sim)
        status, headers, _ = post(gateway, api_key, body)
        assert headers["x-cache"] == "MISS" and upstream_count(sim) == before + 1
    cut = message_body(max_tokens=5, text=f"[[sim:tokens=50]] {question()}")
    assert post(gateway, api_key, cut)[2]["stop_reason"] == "max_tokens"
    assert post(gateway, api_key, cut)[1]["x-cache"] == "MISS"


def test_a_hit_counts_toward_rpm_but_not_the_token_budget(gateway, email):
    key = gateway.new_key(email, "--rpm", "3", "--token-budget", "100000")
    body = message_body(text=question())
    assert post(gateway, key, body)[1]["x-cache"] == "MISS"
    used = key_status(gateway, key)["budget"]["used_tokens"]
    assert post(gateway, key, body)[1]["x-cache"] == "HIT"
    assert key_status(gateway, key)["budget"]["used_tokens"] == used
    assert post(gateway, key, body)[0] == 200
    assert post(gateway, key, body)[0] == 429


def test_a_key_can_be_kept_out_of_the_cache(gateway, email):
    key = gateway.new_key(email, "--no-cache")
    body = message_body(text=question())
    assert post(gateway, key, body)[1]["x-cache"] == "BYPASS"
    assert post(gateway, key, body)[1]["x-cache"] == "BYPASS"


@pytest.fixture
def tuned(sim, tmp_path, request):
    gateway = Gateway(tmp_path / "gateway", extra_env=request.param)
    gateway.add_account("sim", "sk-ant-tuned", sim.url)
    gateway.start()
    yield gateway, gateway.new_key(f"tuned-{uuid.uuid4().hex[:6]}@example.com")
    gateway.stop()


@pytest.mark.parametrize("tuned", [{"CCGATE_CACHE_TTL": "1"}], indirect=True)
def test_entries_expire_after_their_ttl(tuned):
    gateway, key = tuned
    body = message_body(text=question())
    post(gateway, key, body)
    assert post(gateway, key, body)[1]["x-cache"] == "HIT"
    time.sleep(1.2)
    assert post(gateway, key, body)[1]["x-cache"] == "MISS"


@pytest.mark.parametrize("tuned", [{"CCGATE_CACHE": "off"}], indirect=True)
def test_the_operator_can_switch_the_cache_off(tuned):
    gateway, key = tuned
    body = message_body(text=question())
    assert post(gateway, key, body)[1]["x-cache"] == "BYPASS"
    assert post(gateway, key, body)[1]["x-cache"] == "BYPASS"


@pytest.mark.parametrize("tuned", [{"CCGATE_CACHE_DETERMINISTIC_ONLY": "true",
                                    "CCGATE_CACHE_EXCLUDE_MODELS": "claude-opus-4-6"}], indirect=True)
def test_operator_rules_for_sampling_and_models(tuned):
    gateway, key = tuned
    warm = message_body(text=question(), temperature=0.7)
    assert post(gateway, key, warm)[1]["x-cache"] == "BYPASS"
    cold = message_body(text=question(), temperature=0)
    post(gateway, key, cold)
    assert post(gateway, key, cold)[1]["x-cache"] == "HIT"
    excluded = message_body(model="claude-opus-4-6", text=question(), temperature=0)
    assert post(gateway, key, excluded)[1]["x-cache"] == "BYPASS"


@pytest.mark.parametrize("tuned, upstream_calls", [({"CCGATE_CACHE_COALESCE": "true"}, 1), ({}, 5)],
                         indirect=["tuned"])
def test_identical_requests_in_flight_coalesce_only_when_asked(tuned, sim, upstream_calls):
    gateway, key = tuned
    body = message_body(text=question() + slow(500))
    before = upstream_count(sim)
    with ThreadPoolExecutor(5) as pool:
        results = list(pool.map(lambda _: post(gateway, key, body), range(5)))
    assert [status for status, _, _ in results] == [200] * 5
    assert len({json.dumps(payload["content"]) for _, _, payload in results}) == 1
    assert upstream_count(sim) == before + upstream_calls
