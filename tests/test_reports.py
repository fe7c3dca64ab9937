"""Usage reports on a real, migrated SQLite database: what users were debited per user, key, model and
day; what Anthropic invoices per account, at list price."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest

from ccgate.billing.prices import NO_FLAGS, ModelPrice, RequestFlags, Usage, cost
from ccgate.billing.reports import GroupBy, ReportRow, render_csv, usage_report
from ccgate.billing.usage_view import price_row
from ccgate.store.db import create_engine, migrate
from ccgate.store.rows import UsageRow

DAY = 86_400_000
MARKUP = 12_000  # users pay x1.2


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Users a@ and b@, accounts one and two, five requests over three days (one a gateway cache hit)."""
    path: Path = tmp_path_factory.mktemp("reports") / "reports.sqlite3"
    url = f"sqlite+aiosqlite:///{path}"
    migrate(url)
    with sqlite3.connect(path) as connection:
        connection.row_factory = sqlite3.Row
        prices = {row["id"]: ModelPrice.from_row(dict(row)) for row in connection.execute("SELECT * FROM models")}
        for user_id, email in ((1, "a@example.com"), (2, "b@example.com")):
            connection.execute("INSERT INTO users (id, email, is_admin, disabled, created_ms) VALUES (?, ?, 0, 0, 0)",
                               (user_id, email))
        for account_id, name in ((1, "one"), (2, "two")):
            connection.execute("INSERT INTO accounts (id, name, api_key_enc, base_url, priority, weight, enabled, "
                               "created_ms) VALUES (?, ?, 'x', 'http://127.0.0.1', 0, 1, 1, 0)", (account_id, name))

        def request(request_id: str, user_id: int, key_id: str, model: str, account: int | None, day: int,
                    usage: Usage, flags: RequestFlags = NO_FLAGS, cache_hit: bool = False) -> None:
            breakdown = cost(dataclasses.replace(prices[model], markup_bp=MARKUP), flags, usage)
            row = UsageRow(request_id, key_id, user_id, model, "anthropic", 200, True, usage.input_tokens,
                           usage.output_tokens, usage.cache_read_tokens, usage.cache_write_5m_tokens,
                           usage.cache_write_1h_tokens, breakdown.total_micro, latency_ms=1, cache_hit=cache_hit,
                           account_id=account, created_ms=day * DAY + 1000)
            price_row(row, flags, usage, breakdown)
            values = row.as_dict()
            connection.execute(f"INSERT INTO usage ({', '.join(values)}) VALUES ({', '.join(':' + n for n in values)})",
                               values)

        request("r1", 1, "k1", "claude-sonnet-4-6", 1, 0, Usage(input_tokens=1000, output_tokens=1000))
        request("r2", 1, "k2", "claude-opus-4-6", 2, 1, Usage(input_tokens=1000, web_search_requests=2),
                RequestFlags(fast=True))
        request("r3", 2, "k3", "claude-sonnet-4-5-20250929", 1, 1, Usage(input_tokens=200_001),
                RequestFlags(long_context_beta=True))
        request("r4", 2, "k3", "claude-sonnet-4-6", None, 1, Usage(input_tokens=1000), cache_hit=True)
        request("r5", 1, "k1", "claude-sonnet-4-6", 1, 5, Usage(input_tokens=1000))  # after the span
    return url


async def report(url: str, by: GroupBy) -> list[ReportRow]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await usage_report(conn, by, since_ms=0, until_ms=3 * DAY)
    finally:
        await engine.dispose()


async def test_by_user_the_debits_per_component(database):
    a, b = await report(database, GroupBy.USER)
    # a: r1 1000 x 3 x 1.2 = 3600 in, 1000 x 15 x 1.2 = 18000 out; r2 1000 x 30 x 1.2 = 36000 in, 2 x 10000 x 1.2
    assert (a.group, a.requests, a.counts["input_tokens"], a.counts["web_search_requests"]) == \
        ("a@example.com", 2, 2000, 2)
    assert a.cost_nano["input"] == (3600 + 36000) * 1000 and a.cost_nano["output"] == 18000 * 1000
    assert a.cost_nano["web_search"] == 24000 * 1000
    assert a.cost_micro == 3600 + 18000 + 36000 + 24000
    # b: r3 200001 x 6 x 1.2 = 1440007.2 -> 1440008; r4 1000 x 3 x 1.2 = 3600
    assert (b.group, b.requests, b.cost_micro) == ("b@example.com", 2, 1_440_008 + 3600)


async def test_by_key_model_and_day(database):
    assert [(r.group, r.requests) for r in await report(database, GroupBy.KEY)] == [("k1", 1), ("k2", 1), ("k3", 2)]
    by_model = {r.group: r.cost_micro for r in await report(database, GroupBy.MODEL)}
    assert by_model == {"claude-opus-4-6": 60_000, "claude-sonnet-4-5-20250929": 1_440_008,
                        "claude-sonnet-4-6": 21_600 + 3600}
    assert [(r.group, r.requests) for r in await report(database, GroupBy.DAY)] == \
        [("1970-01-01", 1), ("1970-01-02", 3)]


async def test_by_account_what_anthropic_invoices_at_list_price(database):
    one, two = await report(database, GroupBy.ACCOUNT)  # the cache hit reached no account: not listed
    # one: r1 1000 x 3 + 1000 x 15 = 18000; r3 long context 200001 x 6 = 1200006 (no markup)
    assert (one.group, one.requests, one.cost_micro) == ("one", 2, 18_000 + 1_200_006)
    assert one.cost_nano["input"] == (3000 + 1_200_006) * 1000
    # two: r2 fast 1000 x 30 = 30000 + 2 searches x 10000 = 20000
    assert (two.group, two.requests, two.cost_micro) == ("two", 1, 50_000)
    assert two.cost_nano["web_search"] == 20_000_000


async def test_csv(database):
    rows = await report(database, GroupBy.ACCOUNT)
    lines = render_csv(GroupBy.ACCOUNT, rows).splitlines()
    assert lines[0] == ("account,requests,input_tokens,output_tokens,cache_read_tokens,cache_write_5m_tokens,"
                        "cache_write_1h_tokens,web_search_requests,web_fetch_requests,cost_input_usd,cost_output_usd,"
                        "cost_cache_write_5m_usd,cost_cache_write_1h_usd,cost_cache_read_usd,cost_web_search_usd,"
                        "cost_web_fetch_usd,cost_usd")
    assert lines[2] == ("two,1,1000,0,0,0,0,2,0,0.030000000,0.000000000,0.000000000,0.000000000,0.000000000,"
                        "0.020000000,0.000000000,0.050000")
