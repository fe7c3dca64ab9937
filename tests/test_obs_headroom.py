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


def test_reports_of_several_processes_merge_into_one_view() -> None:
    from ccgate.route.headroom import merge_reports

    old = {"requests": {"limit": 50, "remaining": 40, "reset_ms": None}}
    new = {"requests": {"limit": 50, "remaining": 3, "reset_ms": None}}
    reports = [{"updated_ms": 1, "ratelimit": old, "unroutable": "cooling: rate_limited"},
               {"updated_ms": 2, "ratelimit": new, "unroutable": None}]
    assert merge_reports(reports) == {"ratelimit": new, "unroutable": None}
    reports[1]["unroutable"] = "at its concurrency limit"
    assert merge_reports(reports)["unroutable"] == "cooling: rate_limited"
    assert merge_reports([]) == {"ratelimit": None, "unroutable": None}


def test_the_console_accounts_page_shows_headroom_and_the_reason() -> None:
    from ccgate.http.web.console import account_rows
    from ccgate.http.web.render import env

    account = {"id": 1, "name": "acct-1", "base_url": "http://up", "priority": 0, "weight": 1, "models": None,
               "enabled": True, "disabled_reason": None, "cooldown_until_ms": None, "cause": None, "in_flight": 0,
               "requests_last_minute": 3, "last_error": None, "last_error_ms": None, "rpm": None, "concurrency": 1,
               "created_ms": 0, "unroutable": "at its concurrency limit",
               "ratelimit": {"input-tokens": {"limit": 40000, "remaining": 1234, "reset_ms": None}}}
    without = {key: value for key, value in account.items() if key not in ("ratelimit", "unroutable")}
    html = env.get_template("console_accounts.html").render(
        path="/console/accounts", session=None, user=None, csrf="", error=None, notice=None, public_url="http://gw",
        title="Console", default_base_url="https://api.anthropic.com",
        accounts=account_rows([account, without | {"id": 2, "name": "acct-2"}], 0))
    assert "at its concurrency limit" in html and "input-tokens: 1,234 of" in html and "acct-2" in html
