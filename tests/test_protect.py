"""Issue 14: one tenant's requests must not take a shared account from everyone, and count_tokens is
limited.  The real pipeline, gate, router and relay over tests/fakes.py: milliseconds a test."""

from __future__ import annotations

import asyncio
import time
from collections import deque

import pytest
from redis.asyncio import Redis

from ccgate.billing.refusals import RefusalSampler
from ccgate.broadcast import announce_change, confirm_change
from ccgate.dialects.anthropic import AnthropicDialect
from ccgate.errors import GatewayError
from ccgate.gate.keys import KeyRecord
from ccgate.pipeline.context import Call
from ccgate.relay.probe import CredentialProbe
from ccgate.route.pool import Account
from ccgate.store.change_marker import ChangeMarker, MarkerWatch
from fakes import HAIKU, Core, Exchange, FakeServices, answer, api, call_asgi, core, error, key
from services import RedisServer

BODY = b'{"model":"claude-haiku-4-5","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}'
COUNT_BODY = b'{"model":"claude-haiku-4-5","messages":[{"role":"user","content":"hi"}]}'
ROOM = {"anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "49"}
CHANNEL, ACK_PREFIX = "t:config", "t:config-ack:"
NO_ROOM = {"anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "0"}


async def run(rig: Core, user: int = 1) -> Exchange | GatewayError:
    call = Call(AnthropicDialect())
    call.key, call.model, call.max_tokens, call.body_size = key(user), HAIKU, 100, len(BODY)
    try:
        app = await rig.pipeline.run(call, "/v1/messages", BODY, [])
    except GatewayError as refusal:
        return refusal
    return await call_asgi(app)  # type: ignore[arg-type]


def status_of(outcome: Exchange | GatewayError) -> int:
    return outcome.status


def cooling(rig: Core, number: int) -> bool:
    return rig.router.health[number].cooldown_until > time.time() if number in rig.router.health else False


def probed(rig: Core) -> tuple[CredentialProbe, list[str]]:
    """A credential probe wired as the gateway wires it; returns it and the accounts it disabled."""
    disabled: list[str] = []

    async def disable(account: Account, reason: str) -> None:
        disabled.append(account.name)

    probe = CredentialProbe(rig.upstream, on_confirmed=disable)
    rig.pipeline.forwarder.on_rejected = probe.suspect
    return probe, disabled


# -- 401/403: a probe with the account's own credentials decides -----------------------------------

async def test_a_401_the_probe_finds_healthy_disables_nothing_and_fails_over() -> None:
    rig = core()
    probe, disabled = probed(rig)
    rig.upstream.queue("http://upstream-1", error(401, "authentication_error", "invalid x-api-key"))
    rig.upstream.queue("http://upstream-2", answer())
    rig.upstream.probes["http://upstream-1"] = deque([200])
    assert status_of(await run(rig)) == 200
    await probe.drain()
    assert disabled == [] and not cooling(rig, 1)
    [probe_sent] = [sent for sent in rig.upstream.sent if sent.path.startswith("/v1/models")]
    assert probe_sent.headers["x-api-key"] == "sk-ant-fake-1" and probe_sent.body == b""
    # Probed healthy: more refusals within the interval are not probed again.
    rig.upstream.queue("http://upstream-1", error(401, "authentication_error"))
    rig.upstream.queue("http://upstream-2", answer())
    assert status_of(await run(rig)) == 200
    await probe.drain()
    assert len([sent for sent in rig.upstream.sent if sent.path.startswith("/v1/models")]) == 1


async def test_a_401_the_probe_confirms_disables_the_account() -> None:
    rig = core()
    probe, disabled = probed(rig)
    rig.upstream.queue("http://upstream-1", error(403, "permission_error", "organization disabled"))
    rig.upstream.queue("http://upstream-2", answer())
    rig.upstream.probes["http://upstream-1"] = deque([401])
    assert status_of(await run(rig)) == 200
    await probe.drain()
    assert disabled == ["account-1"]


# -- 5xx and timeouts: evidence from several users --------------------------------------------------

async def test_server_errors_from_one_user_never_cool_the_only_account() -> None:
    rig = core(accounts=1)
    for _ in range(6):
        rig.upstream.queue("http://upstream-1", error(500, "api_error", "Internal server error"))
        assert status_of(await run(rig, user=1)) == 502
    rig.upstream.queue("http://upstream-1", answer())
    assert not cooling(rig, 1)
    assert status_of(await run(rig, user=2)) == 200, "another user is served"


async def test_server_errors_from_several_users_cool_the_account() -> None:
    rig = core(accounts=1)
    for user in (1, 1, 2):
        rig.upstream.queue("http://upstream-1", error(500, "api_error"))
        assert status_of(await run(rig, user=user)) == 502
    assert cooling(rig, 1) and rig.router.health[1].cause == "server_error"


async def test_a_request_failing_the_same_way_on_two_accounts_stops_and_cools_neither() -> None:
    rig = core(accounts=3)
    rig.upstream.queue("http://upstream-1", error(500, "api_error", "boom"))
    rig.upstream.queue("http://upstream-2", error(500, "api_error", "boom"))
    rig.upstream.queue("http://upstream-3", answer())
    outcome = await run(rig)
    assert isinstance(outcome, GatewayError) and outcome.status == 502 and "boom" in str(outcome.message)
    assert [sent.base_url for sent in rig.upstream.sent] == ["http://upstream-1", "http://upstream-2"]
    assert not cooling(rig, 1) and not cooling(rig, 2)


async def test_a_failure_another_account_then_answers_is_the_first_accounts() -> None:
    rig = core()
    rig.upstream.queue("http://upstream-1", TimeoutError())
    rig.upstream.queue("http://upstream-2", answer())
    assert status_of(await run(rig)) == 200
    assert cooling(rig, 1) and rig.router.health[1].cause == "unreachable"


# -- 429: the account's own meter decides; a request's own 4xx never cools ---------------------------

async def test_a_429_with_room_left_is_the_requests_and_one_without_is_the_accounts() -> None:
    rig = core(accounts=1)
    rig.upstream.queue("http://upstream-1", error(429, "rate_limit_error", "too big", **ROOM, **{"retry-after": "9"}))
    assert status_of(await run(rig)) == 429
    assert not cooling(rig, 1)
    rig.upstream.queue("http://upstream-1", error(429, "rate_limit_error", "used up", **NO_ROOM,
                                                  **{"retry-after": "9"}))
    assert status_of(await run(rig)) == 429
    assert cooling(rig, 1) and rig.router.health[1].cooldown_until - time.time() <= 9


async def test_a_requests_own_4xx_cools_nothing() -> None:
    rig = core(accounts=1)
    for user in (1, 2, 3):
        rig.upstream.queue("http://upstream-1", error(400, "invalid_request_error"))
        assert status_of(await run(rig, user=user)) == 400
    assert not cooling(rig, 1)


# -- count_tokens ---------------------------------------------------------------------------------

async def count_tokens(rig: Core, record: KeyRecord, times: int) -> list[int]:
    app = api(FakeServices(rig, {"secret": record}))
    statuses = []
    for _ in range(times):
        exchange = await call_asgi(app, path="/v1/messages/count_tokens", body=COUNT_BODY,
                                   headers={"x-api-key": "secret"})
        statuses.append(exchange.status)
    return statuses


async def test_count_tokens_has_a_per_minute_limit_of_its_own() -> None:
    rig = core(accounts=1)
    rig.upstream.queue("http://upstream-1", *[answer(payload={"input_tokens": 8}) for _ in range(20)])
    statuses = await count_tokens(rig, key(rpm=1), 20)
    assert statuses == [200] * 10 + [429] * 10  # rpm 1: max(3 x 1, 10) a minute
    assert len(rig.upstream.sent) == 10
    # ... apart from the key's own RPM: a message is still admitted.
    rig.upstream.queue("http://upstream-1", answer())
    assert status_of(await run(rig)) == 200


async def test_a_count_tokens_body_that_upstream_fails_on_does_not_cool_the_account() -> None:
    rig = core(accounts=1)
    rig.upstream.queue("http://upstream-1", *[error(500, "api_error") for _ in range(5)])
    assert await count_tokens(rig, key(), 5) == [502] * 5
    assert not cooling(rig, 1)


# -- a refused flood ------------------------------------------------------------------------------

async def test_a_refused_flood_writes_a_bounded_number_of_rows() -> None:
    rig = core(accounts=1)
    rig.upstream.queue("http://upstream-1", answer())
    app = api(FakeServices(rig, {"secret": key(rpm=1)}))
    started = time.monotonic()
    statuses = [(await call_asgi(app, path="/v1/messages", body=BODY, headers={"x-api-key": "secret"})).status
                for _ in range(301)]
    seconds = time.monotonic() - started
    assert statuses == [200] + [429] * 300
    assert len(rig.writer.rows) == 1
    # One row per key and reason a second: the first refusal of each second.
    assert 1 <= len(rig.writer.refusals) <= seconds + 1
    assert rig.pipeline.refusals.skipped == 300 - len(rig.writer.refusals)
    assert {(row.status, row.key_id) for row in rig.writer.refusals} == {(429, "key_1")}


def test_refusal_rows_are_one_per_key_and_reason_a_second() -> None:
    sampler = RefusalSampler(interval=1.0)
    assert sampler.take("k1", 429, "rate_limit_error", now=10.0)
    assert not sampler.take("k1", 429, "rate_limit_error", now=10.5)
    assert sampler.take("k1", 402, "billing_error", now=10.5), "another reason has its own row"
    assert sampler.take("k2", 429, "rate_limit_error", now=10.5), "another key has its own row"
    assert sampler.take("k1", 429, "rate_limit_error", now=11.0)
    assert sampler.skipped == 1


# -- read-your-writes on one host ------------------------------------------------------------------

async def test_a_touched_marker_is_seen_by_the_watch_within_one_loop_step(tmp_path) -> None:
    writer, watch = ChangeMarker(tmp_path), MarkerWatch(ChangeMarker(tmp_path))
    loop = asyncio.get_running_loop()
    assert watch.start(loop), "inotify is available on Linux"
    try:
        watch.seen()
        await asyncio.sleep(0.01)
        assert not watch.changed()
        for _ in range(3):  # changes within one clock tick of the file system are each seen
            writer.touch()
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            assert watch.changed()
            watch.seen()
    finally:
        watch.stop(loop)


# -- several processes: the announcement, confirmed ---------------------------------------------------

@pytest.fixture(scope="module")
def redis_url():
    server = RedisServer().start()
    yield server.url
    server.stop()


async def listener(url: str, name: str, *, confirms: bool) -> tuple[Redis, asyncio.Task[None]]:
    """A serving process's side: subscribed to the channel, confirming each announcement (or not)."""
    client = Redis.from_url(url)
    pubsub = client.pubsub()
    await pubsub.subscribe(CHANNEL)

    async def serve() -> None:
        async for message in pubsub.listen():
            if message["type"] == "message" and confirms:
                await confirm_change(client, ACK_PREFIX, [message["data"]], name)

    return client, asyncio.get_running_loop().create_task(serve())


async def announce_to(redis_url: str, *confirming: bool) -> tuple[int, int]:
    listeners = [await listener(redis_url, f"host:{n}", confirms=confirms) for n, confirms in enumerate(confirming)]
    announcer = Redis.from_url(redis_url)
    try:
        return await announce_change(announcer, CHANNEL, ACK_PREFIX, timeout=0.5)
    finally:
        for client, task in listeners:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await client.aclose()
        await announcer.aclose()


async def test_an_announcement_returns_once_every_listening_process_confirmed(redis_url, caplog) -> None:
    started = time.monotonic()
    assert await announce_to(redis_url, True, True, True) == (3, 3)
    assert time.monotonic() - started < 0.5, "it returned as soon as all had confirmed"
    assert "confirmed" not in caplog.text


async def test_a_process_that_does_not_confirm_is_a_warning_after_the_timeout(redis_url, caplog) -> None:
    assert await announce_to(redis_url, True, False) == (1, 2)
    assert "only 1 of 2 serving processes confirmed the change" in caplog.text
