"""The operations behind the CLI, the admin API and the console for issues 13 and 15, in process on a
real migrated SQLite database: overdraft bounds, price modifiers, report spans, the ledger check and
account headroom. Every refusal says what is allowed and changes nothing."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from ccgate.config import Settings
from ccgate.crypto import SecretBox
from ccgate.ops import OperationError, Operations, report_span
from ccgate.store.db import create_engine, migrate
from ccgate.store.schema import account_status, models, users


def run(tmp_path: Path, body: Callable[[Operations], Awaitable[Any]]) -> Any:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ops.sqlite3'}"
    migrate(url)

    async def main() -> Any:
        engine = create_engine(url)
        try:
            settings = Settings.from_env()
            return await body(Operations(engine, SecretBox(b"s" * 32), settings))
        finally:
            await engine.dispose()

    return asyncio.run(main())


async def refused(change: Awaitable[Any], message: str) -> None:
    with pytest.raises(OperationError, match=message):
        await change


def test_overdraft_is_zero_to_a_million_dollars_or_the_default(tmp_path):
    async def body(ops: Operations) -> None:
        await ops.add_user("a@example.com", credit_usd=1)
        assert await ops.set_overdraft("a@example.com", 1_000_000) == 1_000_000_000_000
        for bad in (-0.01, 1_000_000.01, math.nan, math.inf):
            await refused(ops.set_overdraft("a@example.com", bad), r"an overdraft is \$0 to \$1,000,000")
        await refused(ops.set_overdraft("nobody@example.com", 1), "no user")
        assert (await ops.user("a@example.com"))["overdraft_micro"] == 1_000_000_000_000
        assert await ops.set_overdraft("A@example.com ", None) is None
        assert [user["overdraft_micro"] for user in await ops.users()] == [None]

    run(tmp_path, body)


MODIFIER_COLUMNS = [models.c.long_context_threshold, models.c.long_context_input_bp, models.c.long_context_output_bp,
                    models.c.fast_input_bp, models.c.fast_output_bp, models.c.us_geo_bp, models.c.batch_bp,
                    models.c.web_search_price_micro, models.c.web_fetch_price_micro]


def test_update_model_takes_every_price_modifier_and_refuses_bad_ones_changing_nothing(tmp_path):
    async def modifiers_of(ops: Operations, model: str) -> tuple[Any, ...]:
        async with ops.engine.connect() as conn:
            return tuple((await conn.execute(select(*MODIFIER_COLUMNS).where(models.c.id == model))).one())

    async def body(ops: Operations) -> None:
        model = "claude-opus-4-6"
        await ops.update_model(model, modifiers={
            "long_context_threshold": 200_000, "long_context_input": 2, "long_context_output": 1.5,
            "fast_input": 6, "fast_output": 6, "us_geo": 1.1, "batch": 0.5, "web_search_usd": 0.01,
            "web_fetch_usd": 0})
        changed = await modifiers_of(ops, model)
        assert changed == (200_000, 20_000, 15_000, 60_000, 60_000, 11_000, 5_000, 10_000, 0)
        for bad, message in [({"us_geo": 0}, "us_geo: a multiplier above 0"), ({"batch": 100.5}, "at most 100"),
                             ({"web_search_usd": -0.01}, "a price per use"),
                             ({"web_fetch_usd": 1001}, "a price per use"),
                             ({"long_context_threshold": 0}, "at least 1"),
                             ({"long_context_threshold": math.inf}, "finite"), ({"fast_input": math.nan}, "finite"),
                             ({"us_geo": None}, "cannot be empty"), ({"turbo": 2}, "unknown price modifier turbo")]:
            await refused(ops.update_model(model, modifiers=bad), message)
        await refused(ops.update_model("claude-nothing", modifiers={"batch": 0.5}), "no model claude-nothing")
        await refused(ops.update_model(model, prices_usd={"input_price": 3}, modifiers={"us_geo": 0}), "us_geo")
        assert await modifiers_of(ops, model) == changed
        await ops.update_model(model, modifiers={"fast_input": None, "fast_output": None,
                                                 "long_context_threshold": None})
        assert (await modifiers_of(ops, model))[:5] == (None, 20_000, 15_000, None, None)

    run(tmp_path, body)


def test_report_span_is_whole_utc_days_both_included():
    assert report_span("2026-01-01", "2026-01-01") == (1_767_225_600_000, 1_767_312_000_000)
    assert report_span(None, "") == (None, None)
    for start, end, message in [("2026-13-01", None, "from: not a date"), (None, "soon", "to: not a date"),
                                ("2026-01-02", "2026-01-01", "is after")]:
        with pytest.raises(OperationError, match=message):
            report_span(start, end)


def test_report_refuses_an_unknown_grouping(tmp_path):
    async def body(ops: Operations) -> None:
        await refused(ops.report("week"), "a report is by one of user, key, model, account, day, session")
        assert await ops.report("session") == []

    run(tmp_path, body)


def test_ledger_check_counts_what_it_covered_and_finds_a_broken_balance(tmp_path):
    async def body(ops: Operations) -> None:
        await ops.add_user("a@example.com", credit_usd=2)
        await ops.add_user("b@example.com")
        check = await ops.ledger_check()
        assert check.ok and check.summary() == "ledger check: OK (1 balances, 0 debits)"
        async with ops.engine.begin() as conn:
            await conn.execute(users.update().values(balance_micro=users.c.balance_micro - 5)
                               .where(users.c.email == "a@example.com"))
        check = await ops.ledger_check()
        assert not check.ok and [finding.kind for finding in check.findings] == ["balance_mismatch"]

    run(tmp_path, body)


def test_list_accounts_merges_headroom_over_live_processes_only(tmp_path):
    async def body(ops: Operations) -> None:
        await ops.add_account("main", "sk-ant-x")
        now = int(time.time() * 1000)
        old, new = {"requests": {"limit": 50, "remaining": 10, "reset_ms": None}}, \
            {"requests": {"limit": 50, "remaining": 40, "reset_ms": None}}
        async with ops.engine.begin() as conn:
            await conn.execute(insert(account_status), [
                {"account_id": 1, "process": "a", "updated_ms": now - 1000, "ratelimit": old,
                 "unroutable": "requests exhausted", "in_flight": 1, "requests_last_minute": 2},
                {"account_id": 1, "process": "b", "updated_ms": now, "ratelimit": new, "unroutable": None,
                 "in_flight": 0, "requests_last_minute": 3},
                {"account_id": 1, "process": "gone", "updated_ms": now - 60_000, "ratelimit": old,
                 "unroutable": "cooling", "in_flight": 9, "requests_last_minute": 9}])
        [account] = await ops.list_accounts()
        assert account["ratelimit"] == new and account["unroutable"] is None
        assert account["in_flight"] == 1 and account["requests_last_minute"] == 5 and "api_key_enc" not in account

    run(tmp_path, body)
