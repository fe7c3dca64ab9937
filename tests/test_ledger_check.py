"""`ledger check` on a real, migrated SQLite database: books kept by the real writer balance; each
deliberately broken row is found, and only it."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from ccgate.billing.audit import Finding, FindingKind, check_ledger_at, main
from ccgate.billing.ledger import LedgerWriter
from ccgate.store.db import create_engine, migrate
from ccgate.store.rows import UsageRow


@pytest.fixture
def database(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "books.sqlite3"
    url = f"sqlite+aiosqlite:///{path}"
    migrate(url)
    return path, url


def user(connection: sqlite3.Connection, user_id: int, balance: int | None, granted_ms: int | None = None) -> None:
    connection.execute("INSERT INTO users (id, email, is_admin, disabled, balance_micro, created_ms) "
                       "VALUES (?, ?, 0, 0, ?, 0)", (user_id, f"u{user_id}@example.com", balance))
    if granted_ms is not None:
        ledger(connection, user_id, "grant", 1_000_000, None, granted_ms)


def ledger(connection: sqlite3.Connection, user_id: int, kind: str, amount: int, request_id: str | None,
           created_ms: int = 2000) -> None:
    connection.execute("INSERT INTO ledger (user_id, kind, amount_micro, request_id, created_ms) VALUES (?,?,?,?,?)",
                       (user_id, kind, amount, request_id, created_ms))


def usage_row(user_id: int, request_id: str, cost: int, created_ms: int) -> UsageRow:
    return UsageRow(request_id=request_id, key_id="k", user_id=user_id, model="claude-sonnet-4-6",
                    dialect="anthropic", status=200, streamed=True, input_tokens=10, output_tokens=5,
                    cost_micro=cost, latency_ms=3, created_ms=created_ms)


def request(connection: sqlite3.Connection, user_id: int, request_id: str, cost: int, created_ms: int = 2000) -> None:
    row = usage_row(user_id, request_id, cost, created_ms).as_dict()
    connection.execute(f"INSERT INTO usage ({', '.join(row)}) VALUES ({', '.join(':' + name for name in row)})", row)


async def test_books_kept_by_the_writer_balance(database):
    path, url = database
    with sqlite3.connect(path) as connection:
        user(connection, 1, 1_000_000, granted_ms=0)
    engine = create_engine(url)
    writer = LedgerWriter(engine)
    writer.start()
    try:
        await asyncio.gather(*(writer.record(usage_row(1, f"req_{n}", 100 + n, 1000 + n), prepaid=True)
                               for n in range(50)))
    finally:
        await writer.stop()
        await engine.dispose()
    assert await check_ledger_at(url) == []


async def test_each_broken_row_is_found(database):
    path, url = database
    with sqlite3.connect(path) as connection:
        user(connection, 1, 1_000_000 - 150, granted_ms=1000)  # consistent: two requests debited
        for request_id, cost in (("ok1", 100), ("ok2", 50)):
            request(connection, 1, request_id, cost)
            ledger(connection, 1, "request", -cost, request_id)
        user(connection, 2, 1_000_007, granted_ms=1000)  # 7 more than its entries
        user(connection, 3, 1_000_000 - 40 - 2 * 20 - 9, granted_ms=1000)
        request(connection, 3, "short", 45)  # debited 40 of 45
        ledger(connection, 3, "request", -40, "short")
        request(connection, 3, "twice", 20)  # debited twice
        ledger(connection, 3, "request", -20, "twice")
        ledger(connection, 3, "request", -20, "twice")
        ledger(connection, 3, "request", -9, "ghost")  # no such request
        request(connection, 3, "free", 0)  # nothing to debit: fine
        request(connection, 1, "missed", 30, created_ms=3000)  # a prepaid user's request never debited
        user(connection, 4, None)  # postpaid: requests are not debited
        request(connection, 4, "postpaid", 500)
        user(connection, 5, 1_000_000, granted_ms=1000)  # became prepaid at 1000
        request(connection, 5, "before", 60, created_ms=500)  # ... so this one is rightly undebited
    assert await check_ledger_at(url) == [
        Finding(FindingKind.BALANCE_MISMATCH, 2, None, 1_000_000, 1_000_007),
        Finding(FindingKind.DEBIT_MISMATCH, 3, "short", 45, 40),
        Finding(FindingKind.DOUBLE_DEBIT, 3, "twice", 20, 40),
        Finding(FindingKind.DEBIT_WITHOUT_USAGE, 3, "ghost", 0, 9),
        Finding(FindingKind.UNDEBITED_REQUEST, 1, "missed", 30, 0),
    ]


def test_the_command_exits_non_zero_and_lists_what_is_wrong(database, capsys):
    path, url = database
    with sqlite3.connect(path) as connection:
        user(connection, 1, 999, granted_ms=0)
    assert main([url]) == 1
    assert "balance_mismatch: user 1: balance is 999 but its ledger entries sum to 1000000" in capsys.readouterr().out
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE users SET balance_micro = 1000000")
    assert main([url]) == 0
    assert capsys.readouterr().out.strip() == "ledger check: the books balance"
