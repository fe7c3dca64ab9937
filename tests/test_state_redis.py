"""The admission-state contract, run against MemoryState and RedisState alike, then what only Redis adds:
limits shared by several processes, leases that lapse unless renewed, and failing loudly when away."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from redis.asyncio import Redis

from ccgate.route.shared import MAX_SESSIONS, RedisSticky, learn
from ccgate.state.base import Decision, Limits, Settlement, StateUnavailable
from ccgate.state.memory import MemoryState
from ccgate.state.redis import RedisState
from helpers import started_redis

WINDOW = 3600
_prefixes = itertools.count()


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory) -> Iterator[str]:
    server = started_redis(tmp_path_factory.mktemp("redis"))
    yield server.url
    server.stop()


@pytest.fixture
async def make_redis(redis_url) -> AsyncIterator[Callable[..., RedisState]]:
    """RedisStates sharing one fresh key prefix, like gateway processes sharing one Redis."""
    prefix = f"test{next(_prefixes)}:"
    made: list[RedisState] = []

    def make(**options) -> RedisState:
        made.append(RedisState(redis_url, prefix=prefix, **options))
        return made[-1]

    yield make
    for state in made:
        await state.stop()


@pytest.fixture(params=["memory", "redis"])
def state(request) -> MemoryState | RedisState:
    if request.param == "memory":
        return MemoryState()
    return request.getfixturevalue("make_redis")()


def limits(key: str = "key-1", user: int = 1, *, rpm: int | None = None, concurrency: int | None = None,
           budget: int | None = None, reserve: int = 0, hold: int | None = None) -> Limits:
    return Limits(key_id=key, user_id=user, rpm=rpm, concurrency=concurrency, token_budget=budget,
                  window_seconds=WINDOW, reserve_tokens=reserve, hold_micro=hold)


def settlement(claim: Limits, decision: Decision, *, tokens: int = 0, cost: int = 0) -> Settlement:
    return Settlement(key_id=claim.key_id, user_id=claim.user_id, lease_id=decision.lease_id,
                      reserve_tokens=claim.reserve_tokens, hold_micro=claim.hold_micro,
                      window_seconds=claim.window_seconds if claim.token_budget else None,
                      tokens_used=tokens, cost_micro=cost)


def finish(state, claim: Limits, decision: Decision, *, tokens: int = 0, cost: int = 0) -> None:
    """What the ledger writer does once the request's row is committed."""
    state.settle(settlement(claim, decision, tokens=tokens, cost=cost))


async def settled(state) -> None:
    """Wait for scheduled settlements and releases (MemoryState applies them at once)."""
    if isinstance(state, RedisState):
        await state.flush()


async def admit_all(state, claim: Limits, times: int) -> list[Decision]:
    return [await state.admit(claim) for _ in range(times)]


# -- the contract: both backends ----------------------------------------------------------------


async def test_rpm_refuses_past_the_limit_until_the_oldest_request_leaves(state):
    claim = limits(rpm=3)
    admitted = await admit_all(state, claim, 3)
    assert [d.admitted for d in admitted] == [True] * 3
    assert [d.meters[0].remaining for d in admitted] == [2, 1, 0]
    for decision in admitted:
        state.release(settlement(claim, decision))
    await settled(state)

    refused = await state.admit(claim)
    assert (refused.admitted, refused.refused_by, refused.detail) == (False, "rpm", {"rpm": 3})
    assert 59 < refused.retry_after <= 60  # the oldest request leaves the sliding minute, not a fixed one


async def test_concurrency_refuses_past_the_limit_and_a_release_frees_a_slot(state):
    claim = limits(concurrency=2)
    first, second = await admit_all(state, claim, 2)
    assert first.admitted and second.admitted and first.lease_id != second.lease_id

    refused = await state.admit(claim)
    assert (refused.refused_by, refused.retry_after, refused.detail) == ("concurrency", 1.0, {"concurrency": 2})

    state.release(settlement(claim, first))
    await settled(state)
    again = await state.admit(claim)
    assert again.admitted and again.meters[0].remaining == 0


async def test_token_reservations_count_against_the_budget(state):
    claim = limits(budget=1000, reserve=400)
    assert all(d.admitted for d in await admit_all(state, claim, 2))

    refused = await state.admit(claim)
    assert refused.refused_by == "token_budget"
    assert refused.detail == {"used": 800, "needed": 400, "budget": 1000}
    assert refused.retry_after == WINDOW  # reservations come back with their releases, not with time


async def test_commit_moves_used_tokens_into_the_window(state):
    claim = limits(budget=1000, reserve=400)
    for decision in await admit_all(state, claim, 2):
        finish(state, claim, decision, tokens=300)
    await settled(state)

    standing = await state.standing(claim.key_id, claim.user_id, WINDOW)
    assert standing.tokens_used == 600
    assert WINDOW < standing.tokens_reset_in <= WINDOW + 60
    admitted = await state.admit(claim)
    assert admitted.admitted and admitted.meters[0].remaining == 0

    refused = await state.admit(limits(budget=1000, reserve=1))
    assert refused.detail == {"used": 1000, "needed": 1, "budget": 1000}
    assert WINDOW < refused.retry_after <= WINDOW + 60  # when this minute's bucket leaves the window


async def test_holds_never_sum_past_the_balance(state):
    await state.set_balances({1: 1000, 2: None})
    claim = limits(hold=300)
    assert all(d.admitted for d in await admit_all(state, claim, 3))

    refused = await state.admit(claim)
    assert (refused.refused_by, refused.retry_after) == ("credit", None)
    assert (refused.detail["needed_micro"], refused.detail["available_micro"]) == (300, 100)


async def test_concurrent_admissions_never_over_admit(state):
    await state.set_balances({1: 1000})
    decisions = await asyncio.gather(*(state.admit(limits(hold=100)) for _ in range(50)))
    assert sum(d.admitted for d in decisions) == 10
    assert (await state.standing("key-1", 1, WINDOW)).held_micro == 1000


async def test_commit_debits_the_cost_and_release_frees_the_hold(state):
    await state.set_balances({1: 1000})
    claim = limits(hold=300)
    finish(state, claim, await state.admit(claim), cost=120)
    await settled(state)

    standing = await state.standing(claim.key_id, claim.user_id, WINDOW)
    assert (standing.balance_micro, standing.held_micro) == (880, 0)


async def test_settling_a_lease_already_given_back_debits_but_frees_nothing_twice(state):
    await state.set_balances({1: 1000})
    claim = limits(concurrency=2, budget=1000, reserve=100, hold=300)
    first, second = await admit_all(state, claim, 2)
    state.release(settlement(claim, first))  # the client went away before the row was committed
    state.settle(settlement(claim, first, tokens=40, cost=120), release=False)
    await settled(state)

    standing = await state.standing(claim.key_id, claim.user_id, WINDOW)
    assert (standing.balance_micro, standing.held_micro, standing.tokens_used) == (880, 300, 40)
    assert standing.in_flight == 1, "the other request's lease, hold and reservation stay"
    assert (await state.admit(limits(concurrency=2, budget=1000, reserve=860, hold=580))).admitted
    assert not (await state.admit(limits(concurrency=3, budget=1000, reserve=1, hold=1))).admitted


async def test_a_postpaid_user_is_never_checked_nor_debited(state):
    claim = limits(hold=None)
    decision = await state.admit(claim)
    assert decision.admitted and decision.meters == []
    finish(state, claim, decision, cost=500)
    await settled(state)
    assert (await state.standing(claim.key_id, claim.user_id, WINDOW)).balance_micro is None


async def test_standing_counts_requests_and_leases_in_flight(state):
    claim = limits(rpm=10)
    first, *_ = await admit_all(state, claim, 3)
    state.release(settlement(claim, first))
    await settled(state)

    standing = await state.standing(claim.key_id, claim.user_id, WINDOW)
    assert (standing.requests_last_minute, standing.in_flight) == (3, 2)
    assert (standing.tokens_used, standing.tokens_reset_in, standing.held_micro) == (0, None, 0)


async def test_standing_counts_the_requests_of_a_key_without_an_rpm_limit(state):
    claim = limits()
    await admit_all(state, claim, 4)
    assert (await state.standing(claim.key_id, claim.user_id, WINDOW)).requests_last_minute == 4


# -- Redis only ---------------------------------------------------------------------------------


async def test_two_processes_share_every_limit_exactly(make_redis):
    one, two = make_redis(), make_redis()
    processes = itertools.cycle([one, two])
    assert sum([(await next(processes).admit(limits(rpm=4))).admitted for _ in range(8)]) == 4

    await one.set_balances({1: 500})
    credit = await asyncio.gather(*(next(processes).admit(limits(key="key-2", hold=100)) for _ in range(10)))
    assert sum(d.admitted for d in credit) == 5

    claim = limits(key="key-3", concurrency=1)
    held = await one.admit(claim)
    assert (await two.admit(claim)).refused_by == "concurrency"
    one.release(settlement(claim, held))
    await one.flush()
    assert (await two.admit(claim)).admitted


async def test_a_lease_not_renewed_expires_with_its_hold(make_redis):
    state = make_redis(lease_ttl=1)
    await state.set_balances({1: 100})
    claim = limits(concurrency=1, hold=100)
    assert (await state.admit(claim)).admitted
    assert (await state.admit(claim)).refused_by == "credit"

    await asyncio.sleep(1.2)
    assert (await state.admit(claim)).admitted


async def test_a_dead_process_leases_lapse_while_a_live_one_keeps_its_own(make_redis):
    live, dead = make_redis(lease_ttl=1), make_redis(lease_ttl=1)  # dead: never renews, like after kill -9
    live.start_heartbeat()
    await live.set_balances({1: 200})
    claim = limits(concurrency=2, hold=100)
    assert (await live.admit(claim)).admitted and (await dead.admit(claim)).admitted

    await asyncio.sleep(1.5)
    assert (await live.admit(claim)).admitted  # the dead process's slot and hold came back
    refused = await live.admit(claim)
    assert (refused.refused_by, refused.detail["available_micro"]) == ("credit", 0)  # the live ones did not


async def test_renew_extends_only_live_leases(make_redis):
    state = make_redis(lease_ttl=1)
    claim = limits()
    early = await state.admit(claim)
    await asyncio.sleep(0.6)
    late = await state.admit(claim)  # keeps the key's leases alive past the early one's expiry
    await asyncio.sleep(0.6)
    assert await state.renew([(claim.key_id, early.lease_id), (claim.key_id, late.lease_id)]) == 1
    assert await state.renew([]) == 0


async def test_releasing_an_expired_lease_frees_nothing_twice(make_redis):
    state = make_redis(lease_ttl=1)
    await state.set_balances({1: 200})
    claim = limits(hold=100)
    lapsed = await state.admit(claim)
    await asyncio.sleep(1.2)
    assert all(d.admitted for d in await admit_all(state, claim, 2))

    state.release(settlement(claim, lapsed))
    await state.flush()
    assert (await state.admit(claim)).refused_by == "credit"


async def test_set_balances_keeps_a_live_balance(make_redis):
    state = make_redis()
    await state.set_balances({1: 1000})
    claim = limits(hold=300)
    finish(state, claim, await state.admit(claim), cost=100)
    await state.set_balances({1: 1000, 2: 50})  # the database's view, read before that debit

    assert (await state.standing("key-1", 1, WINDOW)).balance_micro == 900
    assert (await state.standing("key-2", 2, WINDOW)).balance_micro == 50


async def test_a_debit_without_a_live_balance_is_left_to_the_database(make_redis):
    state = make_redis()
    claim = limits(user=3, hold=100)
    state.settle(settlement(claim, Decision(True, lease_id="3.gone"), cost=100), release=False)
    await state.flush()
    assert (await state.standing("key-1", 3, WINDOW)).balance_micro is None

    await state.set_balances({3: 700})  # the database's balance, that debit included
    assert (await state.standing("key-1", 3, WINDOW)).balance_micro == 700


async def test_a_credit_entry_reaches_every_process_exactly_once(make_redis):
    one, two = make_redis(), make_redis()
    await one.apply_credits([(5, 1, 500)])  # nothing live yet: the database's figure loads later
    assert (await two.standing("key-1", 1, WINDOW)).balance_micro is None

    await one.set_balances({1: 100}, credited_through=5)  # a figure that includes entries up to 5
    await two.apply_credits([(5, 1, 500)])
    assert (await two.standing("key-1", 1, WINDOW)).balance_micro == 100, "entry 5 is in the figure already"

    await one.apply_credits([(7, 1, 500), (6, 1, -50)])
    await two.apply_credits([(6, 1, -50), (7, 1, 500)])  # the other process sees the same entries
    assert (await two.standing("key-1", 1, WINDOW)).balance_micro == 550
    assert (await two.admit(limits(hold=550))).admitted


async def test_scripts_redis_forgot_are_loaded_again(make_redis, redis_url):
    state = make_redis()
    claim = limits(concurrency=1)
    first = await state.admit(claim)
    raw = Redis.from_url(redis_url)
    await raw.script_flush()  # what a restart of Redis does
    await raw.aclose()
    state.release(settlement(claim, first))
    await state.flush()
    assert (await state.admit(claim)).admitted, "the release ran, and so did the admission after it"


async def test_idle_keys_expire(make_redis, redis_url):
    state = make_redis(lease_ttl=30)
    await state.set_balances({1: 1000})
    claim = limits(rpm=10, budget=1000, reserve=10, hold=10)
    finish(state, claim, await state.admit(claim), tokens=5, cost=1)
    await state.admit(claim)
    await state.flush()

    raw = Redis.from_url(redis_url)
    ttls = {kind: await raw.pttl(f"{state.prefix}{kind}:{ident}") for kind, ident in [
        ("requests", "key-1"), ("tokens", "key-1"), ("leases", "key-1"), ("reserved", "key-1"),
        ("holds", 1), ("held", 1), ("balance", 1)]}
    await raw.aclose()
    assert 0 < ttls["requests"] <= 60_000
    assert WINDOW * 1000 < ttls["tokens"] <= (WINDOW + 60) * 1000
    assert all(0 < ttls[kind] <= 30_000 for kind in ("leases", "reserved", "holds", "held"))
    assert ttls["balance"] == -1  # the live authority never lapses


async def test_every_method_raises_state_unavailable_when_redis_is_away(tmp_path):
    server = started_redis(tmp_path)
    state = RedisState(server.url, timeout=0.5)
    claim = limits(hold=None)
    decision = await state.admit(claim)
    server.stop()

    for call in (state.admit(claim), state.standing("key-1", 1, WINDOW), state.set_balances({1: 5}),
                 state.apply_credits([(1, 1, 5)]), state.renew([(claim.key_id, decision.lease_id)])):
        with pytest.raises(StateUnavailable):
            await call
    finish(state, claim, decision)  # scheduling never raises nor blocks...
    with pytest.raises(StateUnavailable):
        await state.flush()  # ...but the flush says what could not be applied
    await state.stop()


async def test_a_session_account_is_shared_and_written_only_when_it_changes(redis_url):
    raw = Redis.from_url(redis_url, decode_responses=True)
    prefix = f"sticky{next(_prefixes)}:"
    one, other = RedisSticky(raw, prefix), RedisSticky(raw, prefix)
    writes_before = await writes(raw)
    for _ in range(50):  # a conversation's steady requests
        one.put("key-1:s1", 7)
    await asyncio.gather(*one._pending)
    assert await writes(raw) - writes_before == 1, "the same account is told once, not per request"
    assert await other.get("key-1:s1") == 7

    one.put("key-1:s1", 8)  # failover moved it
    await asyncio.gather(*one._pending)
    assert await raw.get(prefix + "key-1:s1") == "8"
    assert 3590 < await raw.ttl(prefix + "key-1:s1") <= 3600
    await raw.aclose()


async def writes(raw: Redis) -> int:
    return int((await raw.info("commandstats")).get("cmdstat_set", {}).get("calls", 0))


def test_a_process_remembers_a_bounded_number_of_sessions():
    entries: dict[str, tuple[int, float]] = {}
    for number in range(MAX_SESSIONS + 1):
        learn(entries, f"s{number}", 1, 0.0)
    learn(entries, "s0", 2, 0.0)  # gone already: learned anew, as the newest
    assert len(entries) < MAX_SESSIONS and "s1" not in entries and f"s{MAX_SESSIONS}" in entries
    assert list(entries)[-1] == "s0"
