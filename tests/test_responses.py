"""Issue 17: the OpenAI Responses API on Claude, with real clients against the simulator: the openai SDK, the
Agents SDK, the AI SDK's openai() provider and Codex CLI (the last two from npm, installed in .tools/)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import openai
import pytest
from pydantic import BaseModel

from helpers import last_upstream_body, raw, usage_of

MODEL = "claude-sonnet-4-6"
TOOLS = Path(__file__).resolve().parent.parent / ".tools" / "node_modules"
CODEX = TOOLS / ".bin" / "codex"
WEATHER_TOOL = {
    "type": "function", "name": "get_weather", "description": "Look up current weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def require_tool(path: Path, what: str) -> None:
    """An npm tool this test needs: absent in CI is a failure, elsewhere a skip that says why."""
    if path.exists():
        return
    message = f"{what} is not installed in .tools (scripts/test.sh installs it with npm)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def key(gateway) -> str:
    """One user's key for the tests here (making a key takes seconds on a busy machine)."""
    return gateway.new_key("responses-tests@example.com")


@pytest.fixture
def client(gateway, key) -> openai.OpenAI:
    """Past the response cache: each test's upstream body is its own."""
    return openai.OpenAI(api_key=key, base_url=gateway.url + "/v1", max_retries=0,
                         default_headers={"X-No-Cache": "true"})


# --- the openai SDK ------------------------------------------------------------------------------


def test_create_answers_and_is_stored(gateway, key, client):
    raw_response = client.responses.with_raw_response.create(model=MODEL, input="Say hello", instructions="Be brief")
    response = raw_response.parse()
    assert response.object == "response" and response.status == "completed"
    assert response.output_text == "Hello from the ccgate simulator. You said: Say hello"
    usage = usage_of(gateway, key, raw_response.headers["x-request-id"])
    assert usage["dialect"] == "responses"
    assert response.usage.input_tokens == usage["input_tokens"]
    assert response.usage.output_tokens == usage["output_tokens"]
    assert client.responses.retrieve(response.id) == response
    items = client.responses.input_items.list(response.id)
    assert [item.content[0].text for item in items.data] == ["Say hello"]
    status, _, refused = raw(gateway, "GET", f"/v1/responses/{response.id}?stream=true",
                             headers={"Authorization": f"Bearer {key}"})
    assert status == 400 and refused["error"]["message"].startswith("stream:")


def test_stream_sends_openais_events_in_sequence(client):
    with client.responses.stream(model=MODEL, input="Tell me a haiku.") as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert [event.sequence_number for event in events] == list(range(len(events)))
    kinds = [event.type for event in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert text == final.output_text == "Hello from the ccgate simulator. You said: Tell me a haiku."
    assert final.usage.output_tokens > 0
    assert final.usage.input_tokens_details.cached_tokens == 0
    assert final.usage.output_tokens_details.reasoning_tokens == 0
    assert client.responses.retrieve(final.id).output_text == final.output_text


class Weather(BaseModel):
    city: str
    degrees: int


def test_parse_with_a_pydantic_model_uses_structured_output(client, sim):
    response = client.responses.parse(model=MODEL, input="Weather in Paris?", text_format=Weather)
    assert isinstance(response.output_parsed, Weather)
    assert response.output_parsed.city == "Paris"
    output_format = last_upstream_body(sim)["output_config"]["format"]
    assert output_format["type"] == "json_schema"
    assert output_format["schema"]["required"] == ["city", "degrees"]


def first_call(client: openai.OpenAI, **fields):
    response = client.responses.create(model=MODEL, input="Weather in Paris?", tools=[WEATHER_TOOL], **fields)
    calls = [item for item in response.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments) == {"city": "Paris"}
    return response, calls[0]


def test_function_tool_over_two_turns_with_previous_response_id(client, sim):
    response, call = first_call(client)
    second = client.responses.create(model=MODEL, previous_response_id=response.id, tools=[WEATHER_TOOL], input=[
        {"type": "function_call_output", "call_id": call.call_id, "output": "15C and sunny"}])
    assert second.output_text == "The tool returned: 15C and sunny"
    assert second.previous_response_id == response.id
    messages = last_upstream_body(sim)["messages"]
    assert [turn["role"] for turn in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"][-1] == {"type": "tool_use", "id": call.call_id, "name": "get_weather",
                                          "input": {"city": "Paris"}}
    assert messages[2]["content"][0]["tool_use_id"] == call.call_id


def test_function_tool_over_two_turns_without_previous_response_id(client, sim):
    response, call = first_call(client, store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)
    handed_back = [item.model_dump(exclude_none=True) for item in response.output]
    second = client.responses.create(model=MODEL, tools=[WEATHER_TOOL], input=[
        {"role": "user", "content": "Weather in Paris?"}, *handed_back,
        {"type": "function_call_output", "call_id": call.call_id, "output": "15C and sunny"}])
    assert second.output_text == "The tool returned: 15C and sunny"
    assert [turn["role"] for turn in last_upstream_body(sim)["messages"]] == ["user", "assistant", "user"]


def test_reasoning_is_thinking_and_comes_back_in_a_tool_loop(client, sim):
    fields = {"reasoning": {"effort": "low"}, "include": ["reasoning.encrypted_content"], "store": False}
    response, call = first_call(client, **fields)
    reasoning = response.output[0]
    assert reasoning.type == "reasoning" and reasoning.encrypted_content
    assert "get_weather" in reasoning.summary[0].text
    assert last_upstream_body(sim)["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    handed_back = [item.model_dump(exclude_none=True) for item in response.output]
    client.responses.create(model=MODEL, tools=[WEATHER_TOOL], **fields, input=[
        {"role": "user", "content": "Weather in Paris?"}, *handed_back,
        {"type": "function_call_output", "call_id": call.call_id, "output": "15C"}])
    upstream = last_upstream_body(sim)
    assert upstream["thinking"]["type"] == "enabled"  # its thinking came back, so thinking stays on
    assert upstream["messages"][1]["content"][0]["type"] == "thinking"


def test_web_search_is_claudes_server_tool(client, sim):
    client.responses.create(model=MODEL, input="Hi", tools=[{"type": "web_search", "search_context_size": "low"}])
    assert last_upstream_body(sim)["tools"] == [{"type": "web_search_20250305", "name": "web_search", "max_uses": 1}]


def test_a_field_that_cannot_be_honoured_is_a_400_naming_it(client, sim):
    sim.clear()
    for fields, named in (({"truncation": "auto"}, "truncation"), ({"background": True}, "background"),
                          ({"tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]}, "tools[0].type"),
                          ({"include": ["message.output_text.logprobs"]}, "include[0]")):
        with pytest.raises(openai.BadRequestError) as caught:
            client.responses.create(model=MODEL, input="Hi", **fields)
        assert caught.value.body["message"].startswith(named + ":"), caught.value.body
        assert caught.value.body["type"] == "invalid_request_error"
    assert sim.requests() == []


def test_a_cached_answer_is_replayed_as_a_response_and_as_a_stream(gateway, key):
    cached = openai.OpenAI(api_key=key, base_url=gateway.url + "/v1", max_retries=0)
    prompt = "Cache me through the Responses API"
    first = cached.responses.with_raw_response.create(model=MODEL, input=prompt)
    again = cached.responses.with_raw_response.create(model=MODEL, input=prompt)
    assert (first.headers["x-cache"], again.headers["x-cache"]) == ("MISS", "HIT")
    assert again.parse().output_text == first.parse().output_text and again.parse().id != first.parse().id
    with cached.responses.stream(model=MODEL, input=prompt) as stream:
        replayed = stream.get_final_response()
    assert replayed.output_text == first.parse().output_text
    assert cached.responses.retrieve(replayed.id).output_text == replayed.output_text


def test_upstream_errors_reach_the_sdk_in_openais_shape(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=MODEL, input="[[sim:fault=400]]")
    assert caught.value.body["type"] == "invalid_request_error"
    events = list(client.responses.create(model=MODEL, stream=True,
                                          input="[[sim:tokens=50]] [[sim:fault=midstream-error]]"))
    assert [event.type for event in events[-2:]] == ["error", "response.failed"]
    assert events[-2].message == "Overloaded" and events[-1].response.error.message == "Overloaded"
    assert events[-1].response.status == "failed"
    assert client.responses.retrieve(events[-1].response.id).status == "failed"


def test_stored_responses_are_walled_per_user(gateway, client, api_key):
    response = client.responses.create(model=MODEL, input="Say hello")
    other = openai.OpenAI(api_key=api_key, base_url=gateway.url + "/v1", max_retries=0)
    for attempt in (lambda: other.responses.retrieve(response.id), lambda: other.responses.delete(response.id),
                    lambda: other.responses.input_items.list(response.id),
                    lambda: other.responses.create(model=MODEL, input="Hi", previous_response_id=response.id)):
        with pytest.raises(openai.NotFoundError):
            attempt()
    client.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


def test_the_same_request_costs_the_same_through_every_dialect(gateway, key):
    """Past the response cache (X-No-Cache), so each request goes upstream and is billed in full."""
    prompt, limit, no_cache = "What is the capital of France?", 300, {"X-No-Cache": "true"}
    _, headers, _ = raw(gateway, "POST", "/v1/messages", headers={"x-api-key": key, **no_cache}, body=json.dumps({
        "model": MODEL, "max_tokens": limit, "messages": [{"role": "user", "content": prompt}]}).encode())
    sdk = openai.OpenAI(api_key=key, base_url=gateway.url + "/v1", max_retries=0, default_headers=no_cache)
    completion = sdk.chat.completions.with_raw_response.create(
        model=MODEL, max_tokens=limit, messages=[{"role": "user", "content": prompt}])
    response = sdk.responses.with_raw_response.create(model=MODEL, max_output_tokens=limit, input=prompt)
    rows = [usage_of(gateway, key, request_id) for request_id in (
        headers["request-id"], completion.headers["x-request-id"], response.headers["x-request-id"])]
    assert [(row["dialect"], row["cache_hit"]) for row in rows] == [
        ("anthropic", False), ("openai", False), ("responses", False)]
    costs = {(row["input_tokens"], row["output_tokens"], row["cost_micro"]) for row in rows}
    assert len(costs) == 1 and rows[0]["cost_micro"] > 0


# --- the Agents SDK ------------------------------------------------------------------------------


def test_agents_sdk_agent_calls_a_function_tool(gateway, key):
    from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled

    set_tracing_disabled(True)
    called: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """Look up the weather in a city."""
        called.append(city)
        return f"Sunny and 21C in {city}"

    model = OpenAIResponsesModel(model=MODEL, openai_client=openai.AsyncOpenAI(
        api_key=key, base_url=gateway.url + "/v1", max_retries=0))
    agent = Agent(name="Weather", instructions="Answer with the weather tool.", tools=[get_weather], model=model)
    result = asyncio.run(Runner.run(agent, "What is the weather in Paris?"))
    assert called == ["Paris"]
    assert result.final_output == "The tool returned: Sunny and 21C in Paris"


# --- the AI SDK ----------------------------------------------------------------------------------


AI_SDK_SCRIPT = """
import { generateText, streamText } from '%(ai)s';
import { createOpenAI } from '%(openai)s';
const openai = createOpenAI({ baseURL: process.env.BASE_URL, apiKey: process.env.API_KEY });
const generated = await generateText({ model: openai('%(model)s'), prompt: 'Say hello' });
const streamed = streamText({ model: openai('%(model)s'), prompt: 'Say goodbye' });
let text = '';
for await (const piece of streamed.textStream) text += piece;
console.log(JSON.stringify({ generated: generated.text, usage: generated.usage.outputTokens, streamed: text,
                             finish: await streamed.finishReason }));
"""


def test_ai_sdk_openai_provider_generates_and_streams(gateway, key, tmp_path):
    require_tool(TOOLS / "@ai-sdk" / "openai" / "package.json", "The AI SDK")
    script = tmp_path / "ai.mjs"
    script.write_text(AI_SDK_SCRIPT % {"ai": TOOLS / "ai" / "dist" / "index.mjs",
                                       "openai": TOOLS / "@ai-sdk" / "openai" / "dist" / "index.mjs", "model": MODEL})
    result = subprocess.run(["node", str(script)], env={"PATH": os.environ["PATH"], "BASE_URL": gateway.url + "/v1",
                                                        "API_KEY": key},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["generated"] == "Hello from the ccgate simulator. You said: Say hello"
    assert answer["usage"] > 0
    assert answer["streamed"] == "Hello from the ccgate simulator. You said: Say goodbye"
    assert answer["finish"] == "stop"


# --- Codex CLI -----------------------------------------------------------------------------------


CODEX_CONFIG = """
model = "%(model)s"
model_provider = "ccgate"
web_search = "live"

[model_providers.ccgate]
name = "ccgate"
base_url = "%(base_url)s/v1"
env_key = "CCGATE_API_KEY"
wire_api = "responses"
"""


def test_codex_cli_answers_a_prompt_through_ccgate(gateway, key, tmp_path, sim):
    require_tool(CODEX, "Codex CLI")
    home, work = tmp_path / "codex-home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    (home / "config.toml").write_text(CODEX_CONFIG % {"model": MODEL, "base_url": gateway.url})
    result = subprocess.run(
        [str(CODEX), "exec", "--skip-git-repo-check", "Say hello"], cwd=work,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "CODEX_HOME": str(home), "CCGATE_API_KEY": key},
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "Hello from the ccgate simulator." in result.stdout
    upstream = last_upstream_body(sim)
    assert upstream["stream"] is True
    assert {"type": "web_search_20250305", "name": "web_search", "max_uses": 5} in upstream["tools"]
    assert gateway.query("select count(*) from usage where dialect = 'responses' and status = 200 "
                         "and streamed = %s and cost_micro > 0", True)[0][0] > 0


# --- retention -----------------------------------------------------------------------------------


def test_stored_responses_expire_after_the_retention_period(tmp_path):
    from sqlalchemy import insert, select

    from ccgate.store import responses_repo
    from ccgate.store.db import create_engine, migrate
    from ccgate.store.schema import responses, users

    url = f"sqlite+aiosqlite:///{tmp_path / 'store.sqlite3'}"
    migrate(url)

    async def scenario() -> tuple:
        engine = create_engine(url)
        async with engine.begin() as conn:
            await conn.execute(insert(users).values(id=1, email="a@example.com", is_admin=False, disabled=False,
                                                    created_ms=0))
            for response_id, retention_s in (("resp_gone", 0), ("resp_kept", 60)):
                await responses_repo.begin_response(conn, response_id=response_id, user_id=1, key_id="k",
                                                    input_items=[], retention_s=retention_s, response={})
            await responses_repo.finish_response(conn, "resp_kept", {"status": "completed"}, [])
        async with engine.begin() as conn:
            found = [await responses_repo.get_response(conn, response_id, user_id)
                     for response_id, user_id in (("resp_kept", 1), ("resp_gone", 1), ("resp_kept", 2))]
            remaining = await conn.execute(select(responses.c.id))
        await engine.dispose()
        return found, [row[0] for row in remaining]

    (kept, gone, walled), remaining = asyncio.run(scenario())
    assert kept is not None and kept.status == "completed" and kept.turns == []
    assert gone is None and walled is None
    assert remaining == ["resp_kept"]  # the expired one was deleted when the next was stored


def test_the_retention_setting_reads_durations(monkeypatch):
    from ccgate.config import Settings

    monkeypatch.delenv("CCGATE_RESPONSES_RETENTION", raising=False)
    assert Settings.from_env().responses_retention == 30 * 86400
    monkeypatch.setenv("CCGATE_RESPONSES_RETENTION", "12h")
    assert Settings.from_env().responses_retention == 12 * 3600
