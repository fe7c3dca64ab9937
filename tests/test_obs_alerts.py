"""Alerts: the conditions, one per condition per interval, signed and Slack payloads, retries, the
delivery log, all against a webhook receiver the test runs."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from aiohttp import web
from sqlalchemy import insert

from ccgate.alerting import AlertError, AlertMonitor, AlertOperations
from ccgate.crypto import SecretBox
from ccgate.obs.alerts import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Alert,
    AlertSettings,
    Deduper,
    account_alerts,
    backlog_alert,
    budget_alerts,
    deliver,
)
from ccgate.store.db import create_engine
from ccgate.store.schema import account_status, accounts, api_keys, metadata, usage, users

SETTINGS = AlertSettings(cooling_minutes=10, credit_below_micro=2_000_000, ledger_backlog=100,
                         repeat_seconds=3600, attempts=3, backoff_seconds=0.01)


def account(name: str, *, enabled: bool = True, reason: str | None = None, until_ms: int | None = None,
            unroutable: str | None = None) -> dict:
    return {"name": name, "enabled": enabled, "disabled_reason": reason, "cooldown_until_ms": until_ms,
            "unroutable": unroutable}


def test_account_conditions() -> None:
    now, since = 1_000_000.0, {}
    rows = [account("a", enabled=False, reason="upstream answered 401: invalid x-api-key"),
            account("b", enabled=False, reason="disabled by operator"),
            account("c", until_ms=int((now + 60) * 1000)), account("d")]
    kinds = [(alert.kind, alert.subject) for alert in account_alerts(rows, since, now, SETTINGS)]
    assert kinds == [("account_disabled", "a")]  # the operator's own action is no news; c cools briefly
    later = now + 11 * 60
    rows[2]["cooldown_until_ms"] = int((later + 60) * 1000)
    rows[3]["unroutable"] = "at its concurrency limit"
    kinds = [(alert.kind, alert.subject) for alert in account_alerts(rows, since, later, SETTINGS)]
    assert ("account_cooling", "c") in kinds and ("no_account_available", "gateway") in kinds
    rows[2]["cooldown_until_ms"] = None
    account_alerts(rows, since, later + 1, SETTINGS)
    assert "c" not in since  # the cooling clock starts again next time


def test_budget_and_backlog_conditions() -> None:
    keys = [{"id": "k1", "user_id": 1, "token_budget": 1000, "used": 799},
            {"id": "k2", "user_id": 1, "token_budget": 1000, "used": 800},
            {"id": "k3", "user_id": 2, "token_budget": 1000, "used": 1200}]
    assert [(a.kind, a.subject) for a in budget_alerts(keys)] == [("key_budget_80", "key:k2"),
                                                                  ("key_budget_100", "key:k3")]
    assert backlog_alert(99, SETTINGS) == [] and backlog_alert(100, SETTINGS)[0].kind == "ledger_backlog"


async def test_one_alert_per_condition_per_interval() -> None:
    deduper = Deduper(0.2)
    alert = Alert("credit_low", "user:1", "low")
    assert await deduper.fresh([alert, Alert("credit_low", "user:2", "low")]) != []
    assert await deduper.fresh([alert]) == []
    time.sleep(0.25)
    assert await deduper.fresh([alert]) == [alert]


class Receiver:
    """A webhook receiver: answers with the statuses it is told, in order, then 200."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, bytes, dict[str, str]]] = []
        self.statuses: list[int] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append((request.path, await request.read(), dict(request.headers)))
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, Receiver]]:
    state = Receiver()
    app = web.Application()
    app.router.add_post("/{name}", state.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", state
    await runner.cleanup()


async def test_delivery_retries_server_errors_and_gives_up_on_client_errors(receiver) -> None:
    import aiohttp

    url, state = receiver
    async with aiohttp.ClientSession() as session:
        state.statuses = [500, 503]
        result = await deliver(session, url + "/hook", b"{}", {}, attempts=3, backoff_seconds=0.01)
        assert (result.outcome, result.attempts, result.http_status) == ("delivered", 3, 200)
        state.statuses = [404]
        result = await deliver(session, url + "/hook", b"{}", {}, attempts=3, backoff_seconds=0.01)
        assert (result.outcome, result.attempts) == ("failed", 1)
        result = await deliver(session, "http://127.0.0.1:9/none", b"{}", {}, attempts=2, backoff_seconds=0.01)
        assert result.outcome == "failed" and result.http_status is None


@pytest.fixture
async def engine(tmp_path: Path):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'alerts.sqlite3'}")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


async def test_monitor_delivers_signed_and_slack_alerts_once_and_logs_them(engine, receiver) -> None:
    url, state = receiver
    box = SecretBox(b"s" * 32)
    ops = AlertOperations(engine, box, SETTINGS)
    await ops.add_webhook("ops-generic", url + "/generic?token=abc", secret="hook-secret")
    await ops.add_webhook("ops-slack", url + "/slack", kind="slack")
    with pytest.raises(AlertError):
        await ops.add_webhook("ops-slack", url + "/slack", kind="slack")
    with pytest.raises(AlertError):
        await ops.add_webhook("bad", url, kind="teams")
    now_ms = int(time.time() * 1000)
    async with engine.begin() as conn:
        await conn.execute(insert(users), [
            {"id": 1, "email": "poor@x", "is_admin": False, "disabled": False, "balance_micro": 500_000,
             "created_ms": now_ms},
            {"id": 2, "email": "rich@x", "is_admin": False, "disabled": False, "balance_micro": 90_000_000,
             "created_ms": now_ms}])
        await conn.execute(insert(api_keys).values(
            id="k1", user_id=2, name="", key_hash="h", display="d", created_ms=now_ms, token_budget=1000,
            window_seconds=3600))
        await conn.execute(insert(usage).values(
            request_id="req_1", key_id="k1", user_id=2, model="m", dialect="anthropic", status=200, streamed=False,
            input_tokens=600, output_tokens=250, cache_read_tokens=5000, cost_micro=1, created_ms=now_ms))
        await conn.execute(insert(accounts), [
            {"id": 1, "name": "acct-a", "api_key_enc": "x", "base_url": "u", "priority": 0, "weight": 1,
             "enabled": False, "disabled_reason": "upstream answered 401: bad key", "created_ms": now_ms},
            {"id": 2, "name": "acct-b", "api_key_enc": "x", "base_url": "u", "priority": 0, "weight": 1,
             "enabled": True, "disabled_reason": None, "created_ms": now_ms}])
        await conn.execute(insert(account_status).values(
            account_id=2, process="p1", cooldown_until_ms=now_ms + 20 * 60_000, cause="rate_limited",
            in_flight=0, requests_last_minute=0, updated_ms=now_ms))
    monitor = AlertMonitor(ops, ledger_depth=lambda: 150)
    sent = await monitor.check_once()
    expected = {("account_disabled", "acct-a"), ("account_cooling", "acct-b"), ("no_account_available", "gateway"),
                ("credit_low", "user:1"), ("key_budget_80", "key:k1"), ("ledger_backlog", "gateway")}
    assert {(alert.kind, alert.subject) for alert in sent} == expected
    generic = [(body, headers) for path, body, headers in state.bodies if path == "/generic"]
    slack = [orjson.loads(body) for path, body, _ in state.bodies if path == "/slack"]
    assert len(generic) == len(slack) == len(expected)
    for body, headers in generic:
        mac = hmac.new(b"hook-secret", headers[TIMESTAMP_HEADER].encode() + b"." + body, hashlib.sha256)
        assert headers[SIGNATURE_HEADER] == "sha256=" + mac.hexdigest()
        assert orjson.loads(body)["source"] == "ccgate"
    assert all(set(payload) == {"text"} and "ccgate" in payload["text"] for payload in slack)
    assert await monitor.check_once() == []  # the same conditions again: not sent twice
    assert len(state.bodies) == 2 * len(expected)
    log = await ops.deliveries()
    assert len(log) == 2 * len(expected) and {row["outcome"] for row in log} == {"delivered"}
    hooks = await ops.webhooks()
    assert [hook["signed"] for hook in hooks] == [True, False]
    assert "token=abc" not in str(hooks) and "hook-secret" not in str(hooks)
    await ops.set_webhook_enabled("ops-slack", False)
    assert await ops.test() == 1
    await ops.remove_webhook("ops-slack")
    assert [hook["name"] for hook in await ops.webhooks()] == ["ops-generic"]


async def test_usage_by_claude_code_session(engine) -> None:
    ops = AlertOperations(engine, SecretBox(b"s" * 32), SETTINGS)
    async with engine.begin() as conn:
        await conn.execute(insert(usage), [
            {"request_id": f"req_{n}", "key_id": "k1", "user_id": 1, "model": "m", "dialect": "anthropic",
             "status": 200, "streamed": True, "input_tokens": 10, "output_tokens": 2, "cost_micro": 100 * (n + 1),
             "created_ms": 1000 + n, "session_id": "sess-a" if n < 3 else "sess-b"} for n in range(5)])
    rows = await ops.usage_by_session(user_id=1)
    assert [(row["session_id"], row["requests"], row["cost_micro"], row["input_tokens"]) for row in rows] == [
        ("sess-b", 2, 900, 20), ("sess-a", 3, 600, 30)]
    assert await ops.usage_by_session(user_id=2) == []


async def test_a_condition_that_held_before_the_first_webhook_is_told_once_one_is_added(engine, receiver) -> None:
    url, state = receiver
    ops = AlertOperations(engine, SecretBox(b"s" * 32), SETTINGS)
    now_ms = int(time.time() * 1000)
    async with engine.begin() as conn:
        await conn.execute(insert(accounts).values(
            id=1, name="acct-a", api_key_enc="x", base_url="u", priority=0, weight=1, enabled=False,
            disabled_reason="upstream answered 401: bad key", created_ms=now_ms))
    monitor = AlertMonitor(ops)
    assert await monitor.check_once() == []  # nobody to tell yet
    await ops.add_webhook("late", url + "/generic")
    assert ("account_disabled", "acct-a") in {(alert.kind, alert.subject) for alert in await monitor.check_once()}
    assert len(state.bodies) >= 1
