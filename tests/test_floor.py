"""Issue 13, the request path: exact debits, prices per component, admission on expected cost, the
overdraft floor enforced while streams run, what abandoned streams are billed, the messages that help.
In-process on the real core (tests/fakes.py), plus the floor property on MemoryState and RedisState."""

from __future__ import annotations

import asyncio
import itertools
import math
import signal
from dataclasses import replace

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccgate.billing.meter import StreamMeter, delta_tokens, output_allowance
from ccgate.billing.prices import RequestFlags, Usage, cost
from ccgate.config import Settings
from ccgate.crypto import SecretBox
from ccgate.dialects.anthropic import AnthropicDialect
from ccgate.dialects.openai import OpenAIDialect
from ccgate.errors import GatewayError
from ccgate.gate.admission import Defaults, Gate, Ticket
from ccgate.gate.keys import KeyDirectory, KeyRecord
from ccgate.ops import OperationError, Operations
from ccgate.pipeline.context import Call
from ccgate.state.base import Decision, Limits
from ccgate.state.memory import MemoryState
from ccgate.state.redis import RedisState
from ccgate.state.resilient import ResilientState
from ccgate.store.db import create_engine, migrate
from ccgate.store.repo import load_live_keys
from fakes import (
    HAIKU,
    Core,
    Exchange,
    FakeServices,
    answer,
    api,
    call_asgi,
    core,
    key,
    long_stream_events,
    message,
    stream,
)
from helpers import started_redis

BODY = b'{"model":"claude-haiku-4-5","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}'
OUTPUT_MICRO = 5  # Haiku: $5 per million output tokens


def new_call(record: KeyRecord, *, stream: bool = False, dialect: AnthropicDialect | OpenAIDialect | None = None,
             max_tokens: int = 100) -> Call:
    call = Call(dialect or AnthropicDialect())
    call.key, call.model, call.stream = record, HAIKU, stream
    call.max_tokens, call.body_size = max_tokens, len(BODY)
    return call


async def run(rig: Core, call: Call, **asgi: object) -> Exchange:
    app = await rig.pipeline.run(call, "/v1/messages", BODY, [])
    return await call_asgi(app, **asgi)  # type: ignore[arg-type]


async def balance_of(rig: Core, record: KeyRecord) -> int:
    for _ in range(200):  # an abandoned stream settles in the background
        standing = await rig.state.standing(record.id, record.user_id, 3600)
        if standing.in_flight == 0:
            break
        await asyncio.sleep(0.01)
    assert standing.in_flight == 0 and standing.held_micro == 0
    assert standing.balance_micro is not None
    return standing.balance_micro


# -- 1. exact debit, always ----------------------------------------------------------------------

usages = st.builds(Usage, *(st.integers(0, 2_000_000) for _ in range(5)), st.integers(0, 50), st.integers(0, 50))
flag_sets = st.builds(RequestFlags, st.booleans(), st.booleans(), st.booleans())


@settings(max_examples=150, deadline=None)
@given(usages, flag_sets)
def test_the_debit_equals_the_exact_cost_for_any_usage(usage, flags):
    """Whatever the upstream reports, far beyond any hold, the row's debit is its exact list cost."""
    async def scenario() -> None:
        rig = core(balances={1: 10**15})
        payload = message(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                          cache_read_input_tokens=usage.cache_read_tokens,
                          cache_creation={"ephemeral_5m_input_tokens": usage.cache_write_5m_tokens,
                                          "ephemeral_1h_input_tokens": usage.cache_write_1h_tokens},
                          server_tool_use={"web_search_requests": usage.web_search_requests,
                                           "web_fetch_requests": usage.web_fetch_requests})
        rig.upstream.queue("http://upstream-1", answer(payload=payload))
        call = new_call(key(prepaid=True))
        call.flags = flags
        assert (await run(rig, call)).status == 200
        [row] = rig.writer.rows
        breakdown = cost(HAIKU, flags, usage)
        assert row.cost_micro == breakdown.total_micro
        assert row.cost_output_nano == math.ceil(breakdown.output / 10**23)
        assert row.speed == ("fast" if flags.fast else None)
        assert await balance_of(rig, key(prepaid=True)) == 10**15 - row.cost_micro

    asyncio.run(scenario())


async def test_images_by_url_are_debited_in_full_not_capped_at_the_hold():
    """The issue's 4.6 KB body with 60 images by URL used 90,005 input tokens and was debited 12.5% of it."""
    record = key(prepaid=True)
    rig = core(balances={1: 1_000_000})
    rig.upstream.queue("http://upstream-1", answer(payload=message(input_tokens=90_005, output_tokens=10)))
    await run(rig, new_call(record))
    [row] = rig.writer.rows
    assert row.cost_micro == 90_005 * 1 + 10 * OUTPUT_MICRO
    assert await balance_of(rig, record) == 1_000_000 - row.cost_micro


async def test_the_estimator_learns_from_settled_requests():
    record = key(prepaid=True)
    rig = core(balances={1: 1_000_000})
    rig.upstream.queue("http://upstream-1", answer(payload=message(input_tokens=90_005, output_tokens=10)))
    await run(rig, new_call(record))
    history = rig.pipeline.gate.estimator.history(record.id)
    assert history.input_per_byte == pytest.approx(90_005 / len(BODY))


# -- 2. the live floor -----------------------------------------------------------------------------

def events_of(body: bytes) -> list[bytes]:
    return [block for block in body.split(b"\n\n") if block]


@pytest.mark.parametrize("dialect", [AnthropicDialect, OpenAIDialect])
async def test_a_stream_past_the_floor_is_ended_cleanly_and_billed_what_was_generated(dialect):
    record = key(prepaid=True)
    rig = core(balances={1: 1_200})
    rig.upstream.queue("http://upstream-1", stream(long_stream_events(200)))  # ~2,200 tokens: $0.011
    exchange = await run(rig, new_call(record, stream=True, dialect=dialect()))
    events = events_of(exchange.body)
    if dialect is AnthropicDialect:
        name, data = events[-1].split(b"\n", 1)
        assert name == b"event: error"
        error = orjson.loads(data.removeprefix(b"data: "))["error"]
    else:
        assert events[-1] == b"data: [DONE]"
        error = orjson.loads(events[-2].removeprefix(b"data: "))["error"]
    expected_type = "billing_error" if dialect is AnthropicDialect else "insufficient_quota"  # as a 402 says it
    assert error["type"] == expected_type and "Credit exhausted" in error["message"]
    assert rig.upstream.responses[0].closed, "the upstream request is cancelled"
    [row] = rig.writer.rows
    assert row.error_type == "credit_exhausted"
    delivered = exchange.body.count(("word " * 8).encode())  # one per delta sent, in either dialect
    assert delivered > 10 and row.output_tokens >= delivered * 10, "every delta sent is billed"
    assert row.cost_micro == cost(HAIKU, RequestFlags(), Usage(12, row.output_tokens)).total_micro
    balance = await balance_of(rig, record)
    assert balance == 1_200 - row.cost_micro
    one_delta = delta_tokens(len(long_stream_events(1)[2].strip())) * OUTPUT_MICRO
    assert 0 <= balance <= 2 * one_delta, "stopped at the floor (0: no overdraft), never past it"


async def test_an_overdraft_lets_a_stream_run_below_zero_down_to_it_and_no_further():
    record = key(prepaid=True, overdraft_micro=5_000)
    rig = core(balances={1: 1_200})
    rig.upstream.queue("http://upstream-1", stream(long_stream_events(400)))
    await run(rig, new_call(record, stream=True))
    balance = await balance_of(rig, record)
    assert -5_000 <= balance < -4_900


async def test_a_stream_within_its_means_is_extended_and_finishes_with_the_upstreams_count():
    record = key(prepaid=True)
    rig = core(balances={1: 1_000_000})
    rig.upstream.queue("http://upstream-1", stream(long_stream_events(200, output_tokens=2_000)))
    exchange = await run(rig, new_call(record, stream=True, max_tokens=4_000))
    assert b"event: message_stop" in exchange.body
    [row] = rig.writer.rows
    assert row.error_type is None and row.output_tokens == 2_000  # the upstream's count, not the local one
    assert await balance_of(rig, record) == 1_000_000 - row.cost_micro


async def test_a_stream_whose_input_alone_crosses_the_floor_ends_at_message_start():
    record = key(prepaid=True)
    rig = core(balances={1: 1_000})
    rig.upstream.queue("http://upstream-1", stream(long_stream_events(50, input_tokens=5_000)))
    exchange = await run(rig, new_call(record, stream=True))
    assert b"word" not in exchange.body and b"event: error" in exchange.body
    [row] = rig.writer.rows
    assert row.error_type == "credit_exhausted" and row.cost_micro == 5_000 + OUTPUT_MICRO


async def test_a_token_budget_ends_a_stream_that_would_pass_it():
    record = key(token_budget=1_000)
    rig = core()
    rig.upstream.queue("http://upstream-1", stream(long_stream_events(200)))
    exchange = await run(rig, new_call(record, stream=True, max_tokens=500))
    assert b"Token budget exhausted" in exchange.body
    [row] = rig.writer.rows
    assert row.error_type == "token_budget_exhausted"
    assert row.input_tokens + row.output_tokens <= 1_000


@pytest.mark.parametrize("deltas_a_read", [1, 7, 25])
async def test_a_stream_read_several_deltas_at_a_time_stops_within_the_floor(deltas_a_read):
    """A fast upstream's reads carry many deltas: the hold is extended before the next read could pass it,
    so a refusal ends the answer still inside it (the relay used to check after a read, a read too late)."""
    record = key(prepaid=True, overdraft_micro=3_000)
    rig = core(balances={1: 1_200})
    events = long_stream_events(600)
    start = next(i for i, event in enumerate(events) if b"content_block_delta" in event)
    reads = [b"".join(events[:start + 1])] + [b"".join(events[i:i + deltas_a_read])
                                            for i in range(start + 1, len(events), deltas_a_read)]
    rig.upstream.queue("http://upstream-1", stream(reads))
    exchange = await run(rig, new_call(record, stream=True, max_tokens=500))
    assert b"Credit exhausted" in exchange.body
    balance = await balance_of(rig, record)
    assert -3_000 <= balance < -3_000 + 2 * deltas_a_read * 10 * OUTPUT_MICRO


# -- 3. abandoned streams --------------------------------------------------------------------------

async def test_an_abandoned_stream_is_billed_for_the_output_produced():
    """The issue: a client that read 150 words and hung up was billed 1 output token."""
    record = key(prepaid=True)
    rig = core(balances={1: 1_000_000})
    rig.upstream.queue("http://upstream-1", stream(long_stream_events(20)[:22] + [5.0] + long_stream_events(20)[22:]))
    await asyncio.wait_for(run(rig, new_call(record, stream=True), hang_up_after=22), 3)
    await balance_of(rig, record)
    [row] = rig.writer.rows
    assert row.error_type == "client_disconnected"
    assert row.output_tokens >= 20 * 10  # 20 deltas of 8 words (40 characters) each
    assert rig.upstream.responses[0].closed


def test_output_is_counted_from_deltas_and_the_upstream_count_wins_when_larger():
    meter = StreamMeter(Usage())
    blocks = [block.strip() for block in long_stream_events(10, output_tokens=500)]
    meter.feed(blocks[:12])  # message_start, the block's start, 10 deltas
    assert meter.counted == 10 * delta_tokens(len(blocks[2])) == 110
    assert meter.output_tokens == meter.counted
    meter.feed(blocks[12:])
    assert meter.output_tokens == 500


def test_the_allowance_is_what_the_hold_covers_after_the_input():
    usage = Usage(input_tokens=100)
    assert output_allowance(HAIKU, RequestFlags(), usage, 100 + 50, None) == 10
    assert output_allowance(HAIKU, RequestFlags(), usage, 99, None) < 0
    assert output_allowance(HAIKU, RequestFlags(), usage, None, 300) == 200


# -- 4. the floor, as a property of the admission state ---------------------------------------------

OPS = st.lists(st.one_of(
    st.tuples(st.just("admit"), st.integers(0, 400)),
    st.tuples(st.just("grow"), st.integers(0, 7), st.integers(1, 300)),
    st.tuples(st.just("settle"), st.integers(0, 7)),
    st.tuples(st.just("grant"), st.integers(1, 500)),
), max_size=40)


async def check_floor(state: MemoryState | RedisState, ops: list, overdraft: int, grant) -> None:
    """Requests grow their running cost; past their hold they must extend it or stop (settling what
    they ran up); whatever the interleaving, balance + overdraft - held never goes below zero and the
    balance is exactly what was granted less what was debited."""
    balance = 1_000
    await state.set_balances({1: balance})
    running: list[tuple[Ticket, list[int]]] = []
    debited = 0
    for op in ops:
        if op[0] == "admit":
            limits = Limits(key_id="k", user_id=1, rpm=None, concurrency=None, token_budget=None,
                            window_seconds=3600, reserve_tokens=0, hold_micro=op[1], overdraft_micro=overdraft)
            decision = await state.admit(limits)
            if decision.admitted:
                running.append((Ticket(state, limits, decision), [0]))
        elif op[0] == "grow" and running:
            ticket, spent = running[op[1] % len(running)]
            if spent[0] + op[2] <= ticket.limits.hold_micro or await ticket.extend(spent[0] + op[2], 0):
                spent[0] += op[2]
        elif op[0] == "settle" and running:
            ticket, spent = running.pop(op[1] % len(running))
            ticket.on_commit(Usage(), spent[0])()
            debited += spent[0]
        elif op[0] == "grant":
            balance += op[1]
            await grant(op[1])
        if isinstance(state, RedisState):
            await state.flush()
        standing = await state.standing("k", 1, 3600)
        assert standing.balance_micro + overdraft - standing.held_micro >= 0
        assert standing.balance_micro == balance - debited
    for ticket, spent in running:
        ticket.on_commit(Usage(), spent[0])()
        debited += spent[0]
    if isinstance(state, RedisState):
        await state.flush()
    standing = await state.standing("k", 1, 3600)
    assert standing.held_micro == 0 and standing.balance_micro == balance - debited >= -overdraft


@settings(max_examples=200, deadline=None)
@given(OPS, st.sampled_from([0, 250]))
def test_the_floor_is_never_crossed_on_memory_state(ops, overdraft):
    state = MemoryState()

    async def grant(amount: int) -> None:
        state.learn_balance(1, state._balances[1] + amount)  # as a reload would find it

    asyncio.run(check_floor(state, ops, overdraft, grant))


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    server = started_redis(tmp_path_factory.mktemp("redis"))
    yield server.url
    server.stop()


_prefixes = itertools.count()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(OPS, st.sampled_from([0, 250]))
def test_the_floor_is_never_crossed_on_redis_state(redis_url, ops, overdraft):
    async def scenario() -> None:
        state = RedisState(redis_url, prefix=f"floor{next(_prefixes)}:")
        entries = itertools.count(1)

        async def grant(amount: int) -> None:
            await state.apply_credits([(next(entries), 1, amount)])

        try:
            await check_floor(state, ops, overdraft, grant)
        finally:
            await state.stop()

    asyncio.run(scenario())


# -- 5. messages that help -----------------------------------------------------------------------------

async def admit(gate: Gate, record: KeyRecord, max_tokens: int) -> GatewayError:
    with pytest.raises(GatewayError) as refused:
        await gate.admit(record, HAIKU, body_size=len(BODY), max_tokens=max_tokens)
    return refused.value


async def test_402_says_which_max_tokens_would_fit_or_how_much_to_top_up():
    state = MemoryState()
    await state.set_balances({1: 300})
    gate = Gate(state, Defaults())
    refused = await admit(gate, key(prepaid=True), 4_000)
    assert refused.status == 402
    # 27 input tokens written to the cache (34 µ$) + 53 output tokens (265 µ$) fit in 300 µ$
    assert "lower max_tokens to 53, or top up $0.02." in refused.message
    assert "expected to cost $0.020034 and $0.0003 is available" in refused.message
    await state.set_balances({1: 10})
    refused = await admit(gate, key(prepaid=True), 4_000)
    assert "lower max_tokens" not in refused.message and "To continue, top up $0.03." in refused.message


async def test_a_request_that_can_never_fit_the_budget_says_so_without_retry_after():
    """The issue: "Token budget exceeded. Resets in 5h 0m" with 0 tokens used and Retry-After: 18000."""
    gate = Gate(MemoryState(), Defaults())
    refused = await admit(gate, key(token_budget=1_000, window_seconds=5 * 3600), 32_000)
    assert refused.status == 429
    assert "can never fit" in refused.message and "Resets in" not in refused.message
    assert "lower max_tokens to 973" in refused.message.lower()
    headers = refused.headers()
    assert "retry-after" not in headers and headers["x-should-retry"] == "false"


async def test_a_budget_refusal_that_waiting_fixes_says_when_and_what_fits_now():
    state = MemoryState()
    gate = Gate(state, Defaults())
    record = key(token_budget=5_000, window_seconds=5 * 3600)
    ticket = await gate.admit(record, HAIKU, body_size=len(BODY), max_tokens=4_000)
    ticket.on_commit(Usage(input_tokens=3_000), 0)()
    refused = await admit(gate, record, 4_000)
    assert "Resets in" in refused.message and "Lower max_tokens to 1973 to fit now" in refused.message
    assert int(refused.headers()["retry-after"]) > 4 * 3600


async def test_key_status_shows_available_credit_the_overdraft_and_what_is_held():
    record = key(prepaid=True, overdraft_micro=250_000)
    rig = core(balances={1: 1_000_000})
    events = long_stream_events(2)
    rig.upstream.queue("http://upstream-1", stream(events[:3] + [0.5] + events[3:]))
    app = api(FakeServices(rig, {"secret": record}))
    running = asyncio.create_task(run(rig, new_call(record, stream=True)))
    await asyncio.sleep(0.2)
    status = (await call_asgi(app, method="GET", path="/v1/key-status", headers={"x-api-key": "secret"})).json()
    credit = status["credit"]
    assert credit["overdraft_micro"] == 250_000 and credit["held_micro"] > 0
    assert credit["available_micro"] == 1_000_000 + 250_000 - credit["held_micro"]
    await running


# -- 6. Redis down: the per-process fallback ----------------------------------------------------------

def held_claim(hold: int) -> Limits:
    """A request of user 1's key "k" holding `hold` micro-USD, nothing else limited."""
    return Limits(key_id="k", user_id=1, rpm=None, concurrency=None, token_budget=None, window_seconds=3600,
                  reserve_tokens=0, hold_micro=hold, overdraft_micro=0)


async def recovered(state: ResilientState) -> None:
    """Wait until the state has recovered onto Redis."""
    for _ in range(100):
        if not state.degraded:
            break
        await asyncio.sleep(0.05)
    assert not state.degraded


async def redis_back(server, state: ResilientState) -> None:
    """Let a stopped Redis answer again and wait until the state has recovered onto it."""
    server.process.send_signal(signal.SIGCONT)
    await recovered(state)


async def redis_counts_it_until_it_ends(state: ResilientState, running: Decision, database: dict[int, int]) -> None:
    """Back on Redis: the running request's 60,000 hold counts there until it ends, costing 30,000,
    which Redis debits too."""
    assert (await state.shared.standing("k", 1, 3600)).held_micro == 60_000, "Redis counts the running hold"
    assert not (await state.admit(held_claim(50_000))).admitted, "100,000 - 60,000 held leaves 40,000"
    Ticket(state, held_claim(60_000), running).on_commit(Usage(), 30_000)()
    database[1] -= 30_000
    await state.shared.flush()
    standing = await state.shared.standing("k", 1, 3600)
    assert standing.held_micro == 0 and standing.balance_micro == 70_000, "Redis debited it too"


async def test_the_fallback_balance_includes_every_settlement_and_redis_is_exact_again_after(tmp_path):
    """The issue: a user with $0.07 ended at -$0.11 (the fallback missed every settlement made through
    Redis, and Redis kept its stale figure after the outage)."""
    server = started_redis(tmp_path)
    database = {1: 100_000}  # what the ledger says, as the reload on recovery reads it

    async def reload() -> None:
        await state.set_balances(dict(database), 0)

    state = ResilientState(RedisState(server.url, prefix="fallback:", timeout=0.3), MemoryState(), reload)
    assert server.process is not None

    async def spend(hold: int, cost_micro: int) -> bool:
        limits = held_claim(hold)
        decision = await state.admit(limits)
        if decision.admitted:
            Ticket(state, limits, decision).on_commit(Usage(), cost_micro)()
            database[1] -= cost_micro
        return decision.admitted

    try:
        await state.set_balances(dict(database))
        assert await spend(10_000, 70_000)  # through Redis, and exactly (70,000 is more than the hold)
        await state.shared.flush()
        server.process.send_signal(signal.SIGSTOP)  # Redis stops answering, keeping its data
        assert not await spend(40_000, 0), "the fallback knows the balance is 30,000, not 100,000"
        assert state.degraded
        assert await spend(20_000, 20_000)
        await redis_back(server, state)
        standing = await state.shared.standing("k", 1, 3600)
        assert standing.balance_micro == database[1] == 10_000, "Redis missed the outage's debit: overwritten"
        assert (await state.local.standing("k", 1, 3600)).balance_micro == 10_000
    finally:
        server.process.send_signal(signal.SIGCONT)
        await state.close()
        server.stop()


async def test_a_request_admitted_during_the_outage_counts_in_redis_once_it_returns(tmp_path):
    """The known gap of the 200-request mixed load: Redis, which never saw the holds of requests the
    fallback admitted, admitted next to them on the whole balance once it answered again."""
    server = started_redis(tmp_path)
    database = {1: 100_000}

    async def reload() -> None:
        await state.set_balances(dict(database), 0)

    state = ResilientState(RedisState(server.url, prefix="adopt:", timeout=0.3), MemoryState(), reload)
    assert server.process is not None

    try:
        await state.set_balances(dict(database))
        server.process.send_signal(signal.SIGSTOP)
        running = await state.admit(held_claim(60_000))  # on the fallback: a long stream, still running
        assert running.admitted and state.degraded
        await redis_back(server, state)
        await redis_counts_it_until_it_ends(state, running, database)
        assert (await state.admit(held_claim(50_000))).admitted
    finally:
        server.process.send_signal(signal.SIGCONT)
        await state.close()
        server.stop()


async def test_a_request_admitted_through_redis_counts_there_again_after_redis_restarted_empty(tmp_path):
    """A Redis restarted during an outage has lost the holds of requests admitted through it before,
    which still run: it claims them again on recovery, under their own leases."""
    server = started_redis(tmp_path)
    database = {1: 100_000}

    async def reload() -> None:
        await state.set_balances(dict(database), 0)

    state = ResilientState(RedisState(server.url, prefix="restart:", timeout=0.3), MemoryState(), reload)
    try:
        await state.set_balances(dict(database))
        running = await state.admit(held_claim(60_000))  # through Redis: a long stream, still running
        assert running.admitted and not state.degraded
        server.stop()  # Redis goes away, and what it held with it
        assert not (await state.admit(held_claim(50_000))).admitted and state.degraded
        server.process = None
        server.start()  # back, empty
        await recovered(state)
        await redis_counts_it_until_it_ends(state, running, database)
    finally:
        await state.close()
        server.stop()


async def test_no_process_admits_through_redis_before_every_process_handed_it_its_running_requests(tmp_path):
    """Each process sees Redis back at its own probe.  One that saw it first and admitted through Redis
    at once would do so on a balance without the holds of one that had not seen it yet."""
    server = started_redis(tmp_path)
    database = {1: 100_000}

    def process() -> ResilientState:
        async def reload() -> None:
            await state.set_balances(dict(database), 0)

        state = ResilientState(RedisState(server.url, prefix="grace:", timeout=0.3), MemoryState(share=2), reload)
        return state

    first, second = process(), process()
    assert server.process is not None

    try:
        for state in (first, second):
            await state.set_balances(dict(database))
        server.process.send_signal(signal.SIGSTOP)
        assert (await first.admit(held_claim(10_000))).admitted and first.degraded  # its probes start now
        await asyncio.sleep(0.6)
        assert (await second.admit(held_claim(30_000))).admitted and second.degraded  # ... and 0.6 s later
        await redis_back(server, first)
        held = (await first.shared.standing("k", 1, 3600)).held_micro
        assert held == 40_000, "when the first process admits through Redis again, the second's hold is there"
    finally:
        server.process.send_signal(signal.SIGCONT)
        for state in (first, second):
            await state.close()
        server.stop()


# -- 7. corrections respect the floor -------------------------------------------------------------------

async def test_processes_without_redis_each_spend_only_their_share_and_together_keep_the_floor():
    """The mixed load on three workers with Redis stopped took users with $0.15 and a $0.05 overdraft to
    -$0.20: each process admitted on the whole balance it last knew of."""
    workers, overdraft = 3, 50_000
    processes = [MemoryState(share=workers) for _ in range(workers)]
    for state in processes:
        await state.set_balances({1: 150_000})
    spent = 0
    for _ in range(100):  # requests of 9,000 micro-USD, costing their hold, round-robin over the processes
        for state in processes:
            limits = Limits(key_id="k", user_id=1, rpm=None, concurrency=None, token_budget=None,
                            window_seconds=3600, reserve_tokens=0, hold_micro=9_000, overdraft_micro=overdraft)
            decision = await state.admit(limits)
            if decision.admitted:
                Ticket(state, limits, decision).on_commit(Usage(), 9_000)()
                spent += 9_000
    assert 150_000 + overdraft - 3 * 9_000 < spent <= 150_000 + overdraft, "each its third, and no more"


async def test_a_process_that_rereads_balances_during_an_outage_keeps_to_its_share_of_the_first_figure():
    """Processes reread the database's balances at their own times while Redis is away: one that had
    spent its share and then reread a balance that included that spending got a fresh share of it
    (120,000 spent of 100,000 here)."""
    database = {1: 100_000}

    async def nothing() -> None:
        pass

    a, b = (ResilientState(RedisState("redis://127.0.0.1:9", prefix="gone:", timeout=0.2), MemoryState(share=2),
                           nothing) for _ in range(2))

    async def spend_all(state: ResilientState) -> int:
        spent = 0
        for _ in range(20):
            limits = Limits(key_id="k", user_id=1, rpm=None, concurrency=None, token_budget=None,
                            window_seconds=3600, reserve_tokens=0, hold_micro=10_000, overdraft_micro=0)
            decision = await state.admit(limits)
            if not decision.admitted:
                break
            Ticket(state, limits, decision).on_commit(Usage(), 10_000)()
            database[1] -= 10_000
            spent += 10_000
        return spent

    try:
        for state in (a, b):
            await state.set_balances(dict(database))  # Redis does not answer: degraded from here on
            assert state.degraded
        spent = await spend_all(a)
        assert spent == 50_000, "its half"
        await a.set_balances(dict(database))  # the database says 50,000 now: a's own spending
        spent += await spend_all(a) + await spend_all(b)
        assert spent == 100_000 and database[1] == 0, "together, the balance and no more"
        database[1] += 40_000  # a top-up during the outage, which each process reads at its next reload
        for state in (a, b):
            await state.set_balances(dict(database))
            await state.apply_credits([(7, 1, 40_000)])
        assert await spend_all(a) == 20_000 and await spend_all(b) == 20_000, "each its share of it"
    finally:
        for state in (a, b):
            await state.close()


async def test_a_correction_below_the_floor_counting_holds_in_flight_is_refused(tmp_path, redis_url):
    url = f"sqlite+aiosqlite:///{tmp_path / 'credit.sqlite3'}"
    await asyncio.to_thread(migrate, url)
    engine = create_engine(url)
    settings = replace(Settings.from_env(), redis_url=redis_url, redis_prefix="credit:", default_overdraft_micro=0)
    ops = Operations(engine, SecretBox(b"s" * 32), settings)
    shared = RedisState(redis_url, prefix="credit:")
    try:
        user_id = await ops.add_user("a@example.com", credit_usd=1.0)
        await shared.set_balances({user_id: 1_000_000})
        limits = Limits(key_id="k", user_id=user_id, rpm=None, concurrency=None, token_budget=None,
                        window_seconds=3600, reserve_tokens=0, hold_micro=600_000)
        assert (await shared.admit(limits)).admitted  # a request in flight on some server holds $0.60
        with pytest.raises(OperationError, match=r"below their floor.*\$0\.600000 held by requests in flight"):
            await ops.grant_credit("a@example.com", -0.5)
        assert await ops.grant_credit("a@example.com", -0.4) == 600_000
        settings = replace(settings, redis_url=None, default_overdraft_micro=200_000)
        ops = Operations(engine, SecretBox(b"s" * 32), settings)
        with pytest.raises(OperationError, match="below their floor"):
            await ops.grant_credit("a@example.com", -0.81)
        assert await ops.grant_credit("a@example.com", -0.8) == -200_000  # down to the overdraft
        assert await ops.grant_credit("a@example.com", 0.1) == -100_000, "a grant is never refused"
    finally:
        await shared.stop()
        await engine.dispose()


async def test_an_operator_sets_a_users_overdraft_and_admission_reads_it(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'overdraft.sqlite3'}"
    await asyncio.to_thread(migrate, url)
    engine = create_engine(url)
    ops = Operations(engine, SecretBox(b"s" * 32), Settings.from_env())
    try:
        await ops.add_user("b@example.com", credit_usd=0.0)
        await ops.create_key("b@example.com")
        await ops.set_overdraft("b@example.com", 0.25)
        async with engine.connect() as conn:
            [record] = [(await KeyDirectory.load(conn)).lookup(row["key_hash"]) for row in await load_live_keys(conn)]
        assert record is not None and record.overdraft_micro == 250_000
        state = MemoryState()
        await state.set_balances({record.user_id: 0})
        gate = Gate(state, Defaults())
        assert await gate.admit(record, HAIKU, body_size=len(BODY), max_tokens=100), "$0 plus a $0.25 overdraft"
        with pytest.raises(OperationError, match=r"\$0 to"):
            await ops.set_overdraft("b@example.com", -1)
        await ops.set_overdraft("b@example.com", None)
        assert (await ops.user("b@example.com"))["overdraft_micro"] is None
    finally:
        await engine.dispose()
