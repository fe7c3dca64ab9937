"""Account headroom: the anthropic-ratelimit-* windows per account, and why an account cannot be routed to."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from ccgate.route.headroom import Window, exhausted, parse_ratelimit
from ccgate.route.pool import Account, AccountPool
from ccgate.route.router import Router


def headers(remaining_input: int, reset_in: float = 30) -> dict[str, str]:
    reset = (datetime.now(UTC) + timedelta(seconds=reset_in)).isoformat().replace("+00:00", "Z")
    return {"anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "49",
            "anthropic-ratelimit-requests-reset": reset,
            "anthropic-ratelimit-input-tokens-limit": "40000",
            "anthropic-ratelimit-input-tokens-remaining": str(remaining_input),
            "anthropic-ratelimit-input-tokens-reset": reset,
            "anthropic-ratelimit-output-tokens-limit": "8000", "anthropic-ratelimit-output-tokens-remaining": "7000"}


def an_account(number: int, **changes: object) -> Account:
    fields: dict = dict(id=number, name=f"acct-{number}", api_key="sk-ant-x", base_url="http://up", models=None,
                        priority=0, weight=1, rpm=None, concurrency=None)
    fields.update(changes)
    return Account(**fields)


def test_parse_each_window() -> None:
    windows = parse_ratelimit(headers(1234))
    assert windows["requests"].limit == 50 and windows["requests"].remaining == 49
    assert windows["input-tokens"] == Window(40000, 1234, windows["input-tokens"].reset_ms)
    assert abs(windows["input-tokens"].reset_ms / 1000 - time.time() - 30) < 2
    assert windows["output-tokens"].reset_ms is None
    assert "tokens" not in windows and parse_ratelimit({}) == {}


def test_an_exhausted_window_is_a_reason_until_it_resets() -> None:
    windows = parse_ratelimit(headers(0))
    now_ms = int(time.time() * 1000)
    assert exhausted(windows, now_ms) == "input-tokens exhausted"
    assert exhausted(windows, now_ms + 60_000) is None


def test_router_keeps_windows_and_says_why_an_account_cannot_be_routed_to() -> None:
    router = Router()
    busy, cool, dry, fine = (an_account(1, concurrency=1), an_account(2), an_account(3), an_account(4))
    router.set_pool(AccountPool([busy, cool, dry, fine]))
    router.begin(busy)
    router.failed(cool, "rate_limited", "slow down", 30)
    router.succeeded(dry, headers(0))
    router.succeeded(fine, headers(20000))
    assert router.unroutable(busy) == "at its concurrency limit"
    assert router.unroutable(cool) == "cooling: rate_limited"
    assert router.unroutable(dry) == "input-tokens exhausted"
    assert router.unroutable(fine) is None
    rows = {row["account_id"]: row for row in router.snapshot()}
    assert rows[4]["ratelimit"]["input-tokens"]["remaining"] == 20000 and rows[4]["unroutable"] is None
    assert rows[3]["unroutable"] == "input-tokens exhausted"
    gauges = {gauge.name: gauge for gauge in router.gauges(disabled=("acct-9",))}
    assert gauges["acct-2"].state == "cooling" and gauges["acct-9"].state == "disabled"
    assert gauges["acct-4"].limits["input-tokens"] == (40000, 20000) and gauges["acct-1"].in_flight == 1
