"""DESIGN.md's invariants, each shown on the real request core in-process (tests/fakes.py): no socket,
no database, milliseconds a test."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from ccgate.billing.prices import Usage, cost_micro
from ccgate.dialects.anthropic import AnthropicDialect
from ccgate.dialects.openai import OpenAIDialect
from ccgate.errors import GatewayError
from ccgate.gate.keys import KeyRecord
from ccgate.pipeline.context import Call
from fakes import (
    HAIKU,
    Core,
    Exchange,
    FakeServices,
    answer,
    api,
    broken_stream_error,
    call_asgi,
    core,
    error,
    key,
    message,
    stream,
    stream_events,
)

BODY = b'{"model":"claude-haiku-4-5","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}'
BALANCE = 1_000_000


def new_call(*, stream: bool = False, record: KeyRecord | None = None) -> Call:
    call = Call(AnthropicDialect())
    call.key, call.model, call.stream = record or key(), HAIKU, stream
    call.max_tokens, call.body_size = 100, len(BODY)
    return call


async def run(rig: Core, call: Call, **asgi: object) -> Exchange | GatewayError:
    """The pipeline's answer as a client receives it (or the error the handler would encode)."""
    try:
        app = await rig.pipeline.run(call, "/v1/messages", BODY, [])
    except GatewayError as refusal:
        return refusal
    return await call_asgi(app, **asgi)  # type: ignore[arg-type]


async def settled(rig: Core, record: KeyRecord) -> None:
    """Nothing is held any more: no lease, no credit hold, no account in flight."""
    for _ in range(100):  # an abandoned stream is settled in the background
        standing = await rig.state.standing(record.id, record.user_id, 3600)
        if standing.in_flight == 0 and standing.held_micro == 0:
            break
        await asyncio.sleep(0.01)
    assert standing.in_flight == 0, "a concurrency lease was not given back"
    assert standing.held_micro == 0, "a credit hold was not given back"
    assert all(health.in_flight == 0 for health in rig.router.health.values())


# -- 1. exact debits -----------------------------------------------------------------------------

async def test_a_request_is_debited_its_exact_list_cost() -> None:
    rig = core(balances={1: BALANCE})
    rig.upstream.queue("http://upstream-1", answer(payload=message(input_tokens=123, output_tokens=56)))
    exchange = await run(rig, new_call(record=key(prepaid=True)))
    assert isinstance(exchange, Exchange) and exchange.status == 200
    expected = cost_micro(HAIKU, Usage(input_tokens=123, output_tokens=56))
    assert expected == 123 + 56 * 5  # $1 and $5 per million tokens: one micro-dollar per token and five
    [row] = rig.writer.rows
    assert row.cost_micro == expected
    assert (await rig.state.standing("key_1", 1, 3600)).balance_micro == BALANCE - expected
    await settled(rig, key())


# -- 2. nothing billed is lost, nothing billed twice ----------------------------------------------

async def test_a_streams_last_event_waits_for_its_usage_row_to_commit() -> None:
    rig = core(balances={1: BALANCE})
    rig.upstream.queue("http://upstream-1", stream())
    rig.writer.hold = asyncio.Event()
    seen: list[bytes] = []
    call = new_call(stream=True, record=key(prepaid=True))
    relay = asyncio.create_task(run(rig, call, on_chunk=lambda exchange: seen.append(exchange.chunks[-1])))
    for _ in range(100):
        if any(b"message_delta" in chunk for chunk in seen):
            break
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.02)
    assert not rig.writer.rows
    assert not any(b"message_stop" in chunk for chunk in seen), "the last event went out before the commit"
    rig.writer.hold.set()
    exchange = await relay
    assert isinstance(exchange, Exchange) and b"message_stop" in exchange.body
    assert len(rig.writer.rows) == 1


async def test_a_request_that_fails_over_is_one_row_on_the_account_that_answered() -> None:
    rig = core()
    rig.upstream.queue("http://upstream-1", error(529, "overloaded_error"))
    rig.upstream.queue("http://upstream-2", answer())
    exchange = await run(rig, new_call())
    assert isinstance(exchange, Exchange) and exchange.status == 200
    [row] = rig.writer.rows
    assert row.account_id == 2 and row.status == 200
    assert [sent.base_url for sent in rig.upstream.sent] == ["http://upstream-1", "http://upstream-2"]


async def test_an_answer_whose_row_cannot_be_committed_is_withheld_and_not_billed() -> None:
    rig = core(balances={1: BALANCE})
    rig.upstream.queue("http://upstream-1", answer())
    rig.writer.fail = True
    refusal = await run(rig, new_call(record=key(prepaid=True)))
    assert isinstance(refusal, GatewayError) and refusal.status == 503
    assert (await rig.state.standing("key_1", 1, 3600)).balance_micro == BALANCE
    await settled(rig, key())


# -- 3. leases always come back -------------------------------------------------------------------

LEASE_PATHS = {
    "success": dict(answers=[answer()]),
    "upstream client error": dict(answers=[error(400, "invalid_request_error")]),
    "every account fails": dict(answers=[error(500, "api_error")], second=[error(500, "api_error")]),
    "stream success": dict(answers=[stream()], stream=True),
    "client hangs up": dict(answers=[stream(stream_events()[:2] + [5.0] + stream_events()[2:])], stream=True,
                            hang_up_after=1),
    "upstream goes silent": dict(answers=[stream(stream_events()[:2] + [5.0])], stream=True, idle=0.05),
    "upstream breaks mid-stream": dict(answers=[stream(stream_events()[:2] + [broken_stream_error()])],
                                       stream=True),
    "database down": dict(answers=[answer()], database_down=True),
}


@pytest.mark.parametrize("path", LEASE_PATHS)
async def test_every_lease_and_hold_comes_back(path: str) -> None:
    case = LEASE_PATHS[path]
    rig = core(balances={1: BALANCE})
    rig.upstream.queue("http://upstream-1", *case["answers"])
    rig.upstream.queue("http://upstream-2", *case.get("second", []))
    rig.upstream.idle_timeout = case.get("idle", 2.0)
    rig.writer.fail = case.get("database_down", False)
    record = key(prepaid=True, concurrency=1)
    call = new_call(stream=case.get("stream", False), record=record)
    await asyncio.wait_for(run(rig, call, hang_up_after=case.get("hang_up_after")), 3)
    await settled(rig, record)
    assert all(response.closed for response in rig.upstream.responses if response.status == 200 and call.stream)
    # the slot is free again: the next request is admitted
    rig.router.health.clear()
    rig.upstream.queue("http://upstream-1", answer())
    rig.writer.fail = False
    assert isinstance(await run(rig, new_call(record=record)), Exchange)


# -- 4. failover only before the first byte -------------------------------------------------------

async def test_a_failure_after_the_first_byte_is_an_error_event_never_a_second_answer() -> None:
    rig = core()
    rig.upstream.queue("http://upstream-1", stream(stream_events()[:3] + [broken_stream_error()]))
    rig.upstream.queue("http://upstream-2", stream())
    exchange = await run(rig, new_call(stream=True))
    assert isinstance(exchange, Exchange) and exchange.status == 200
    assert len(rig.upstream.sent) == 1, "a second account was asked after bytes reached the client"
    assert exchange.body.count(b"event: message_start") == 1
    assert exchange.body.rstrip().split(b"\n\n")[-1].startswith(b"event: error")
    [row] = rig.writer.rows
    assert row.error_type == "upstream_disconnected"


async def test_the_openai_dialect_ends_a_broken_stream_with_an_error_chunk_and_done() -> None:
    rig = core()
    rig.upstream.queue("http://upstream-1", stream(stream_events()[:3] + [broken_stream_error()]))
    call = new_call(stream=True)
    call.dialect = OpenAIDialect()
    exchange = await run(rig, call)
    assert isinstance(exchange, Exchange)
    *_, last_chunk, done = [line for line in exchange.body.split(b"\n\n") if line]
    assert done == b"data: [DONE]"
    assert orjson.loads(last_chunk.removeprefix(b"data: "))["error"]["type"] == "api_error"


# -- 5. bill what happened ------------------------------------------------------------------------

async def test_input_is_billed_from_message_start_and_output_from_the_last_delta() -> None:
    rig = core()
    payload = message(input_tokens=50, output_tokens=33, cache_read_input_tokens=10,
                      cache_creation={"ephemeral_5m_input_tokens": 4, "ephemeral_1h_input_tokens": 6})
    rig.upstream.queue("http://upstream-1", stream(stream_events(payload)))
    await run(rig, new_call(stream=True))
    [row] = rig.writer.rows
    assert (row.input_tokens, row.output_tokens, row.cache_read_tokens) == (50, 33, 10)
    assert (row.cache_write_5m_tokens, row.cache_write_1h_tokens) == (4, 6)
    assert row.cost_micro == cost_micro(HAIKU, Usage(50, 33, 10, 4, 6))


async def test_an_abandoned_stream_is_recorded_and_its_upstream_request_cancelled() -> None:
    rig = core()
    rig.upstream.queue("http://upstream-1", stream(stream_events()[:2] + [5.0] + stream_events()[2:]))
    await asyncio.wait_for(run(rig, new_call(stream=True), hang_up_after=1), 2)
    await settled(rig, key())
    [row] = rig.writer.rows
    assert row.error_type == "client_disconnected" and row.input_tokens == 12
    assert rig.upstream.responses[0].closed


# -- 6. tenants are walled ------------------------------------------------------------------------

async def test_a_key_sees_only_its_own_users_requests() -> None:
    rig = core()
    alice, bob = key(1, key_id="key_alice"), key(2, key_id="key_bob")
    rig.upstream.queue("http://upstream-1", answer())
    app = api(FakeServices(rig, {"alice-secret": alice, "bob-secret": bob}))
    made = await call_asgi(app, path="/v1/messages", body=BODY, headers={"x-api-key": "alice-secret"})
    request_id = made.headers["request-id"]
    own = await call_asgi(app, method="GET", path=f"/v1/usage/{request_id}", headers={"x-api-key": "alice-secret"})
    other = await call_asgi(app, method="GET", path=f"/v1/usage/{request_id}", headers={"x-api-key": "bob-secret"})
    assert own.status == 200 and own.json()["request_id"] == request_id
    assert other.status == 404 and other.json()["error"]["type"] == "not_found_error"
    assert request_id not in other.body.decode().replace(f"no request {request_id}", "")


# -- 7. bad input gets a clear error and changes nothing -------------------------------------------

@pytest.mark.parametrize(("path", "body", "shape"), [
    ("/v1/messages", b"{not json", "anthropic"),
    ("/v1/messages", b'{"model": "claude-haiku-4-5", "messages": [], "max_tokens": "many"}', "anthropic"),
    ("/v1/messages", b"[1, 2, 3]", "anthropic"),
    ("/v1/chat/completions", b"{not json", "openai"),
    ("/v1/chat/completions", b'{"model": "claude-haiku-4-5", "messages": "hi"}', "openai"),
])
async def test_malformed_requests_are_400_in_the_callers_dialect_and_go_nowhere(path: str, body: bytes,
                                                                                 shape: str) -> None:
    rig = core()
    app = api(FakeServices(rig, {"secret": key()}))
    exchange = await call_asgi(app, path=path, body=body, headers={"x-api-key": "secret"})
    assert exchange.status == 400
    payload = exchange.json()
    if shape == "anthropic":
        assert payload["type"] == "error" and payload["error"]["type"] == "invalid_request_error"
    else:
        assert payload["error"]["type"] == "invalid_request_error" and "param" in payload["error"]
    assert not rig.upstream.sent and not rig.writer.rows
    await settled(rig, key())


# -- 8. a request's own fault does not take a shared account away ---------------------------------

async def test_an_account_whose_key_upstream_refuses_is_reported_off_the_request_path() -> None:
    rig = core()
    rig.upstream.queue("http://upstream-1", error(401, "authentication_error", "invalid x-api-key"))
    rig.upstream.queue("http://upstream-2", answer())
    exchange = await run(rig, new_call())
    assert isinstance(exchange, Exchange) and exchange.status == 200
    assert [name for name, _ in rig.rejected] == ["account-1"]
