"""The usage writer on a real SQLite file: group commits, debits with ledger entries, and the
write-ahead log copied into the database by the background checkpointer, not by a commit."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from pathlib import Path

import pytest

from ccgate.billing.ledger import LedgerWriter
from ccgate.store.db import create_engine, migrate
from ccgate.store.rows import UsageRow
from services import wait_until


def usage_row(user_id: int, cost: int) -> UsageRow:
    return UsageRow(request_id=f"req_{uuid.uuid4().hex}", key_id="key_test", user_id=user_id,
                    model="claude-haiku-4-5", dialect="anthropic", status=200, streamed=False,
                    input_tokens=10, output_tokens=5, cost_micro=cost, latency_ms=3,
                    created_ms=int(time.time() * 1000))


@pytest.fixture
def database(tmp_path: Path) -> tuple[Path, str]:
    """A migrated database file with one prepaid user (made outside the test's event loop, as Alembic
    runs one of its own)."""
    path = tmp_path / "ledger.sqlite3"
    url = f"sqlite+aiosqlite:///{path}"
    migrate(url)
    with sqlite3.connect(path) as connection:
        connection.execute("INSERT INTO users (id, email, is_admin, disabled, balance_micro, created_ms) "
                           "VALUES (1, 'ledger@example.com', 0, 0, 1000000, 0)")
    return path, url


async def test_a_crowd_shares_commits_and_every_debit_has_its_ledger_entry(database):
    path, url = database
    engine = create_engine(url)
    writer = LedgerWriter(engine)
    writer.start()
    committed: list[int] = []
    try:
        await asyncio.gather(*(writer.record(usage_row(1, 7), prepaid=True,
                                             on_commit=lambda n=n: committed.append(n)) for n in range(200)))
    finally:
        await writer.stop()
        await engine.dispose()
    assert sorted(committed) == list(range(200)), "each record's on_commit ran once, after its commit"
    with sqlite3.connect(path) as connection:
        rows, = connection.execute("SELECT count(*) FROM usage").fetchone()
        entries, debited = connection.execute("SELECT count(*), -sum(amount_micro) FROM ledger").fetchone()
        balance, = connection.execute("SELECT balance_micro FROM users WHERE id = 1").fetchone()
    assert (rows, entries, debited, balance) == (200, 200, 1400, 1000000 - 1400)


async def test_the_log_reaches_the_database_file_without_a_commit_copying_it(database):
    path, url = database
    engine = create_engine(url)
    writer = LedgerWriter(engine)
    writer.start()
    try:
        with sqlite3.connect(path) as connection:  # start from a database file holding everything
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size_before = path.stat().st_size
        for _ in range(20):  # ~60 pages of log: far below any commit's own checkpoint
            await asyncio.gather(*(writer.record(usage_row(1, 1), prepaid=True) for _ in range(50)))
        assert wait_until(lambda: path.stat().st_size > size_before, timeout=3), \
            "the checkpointer copied the new pages into the database file"
    finally:
        await writer.stop()
        await engine.dispose()


async def test_a_debit_past_zero_is_exact_so_balance_and_ledger_agree(database):
    """The issue: the debit clamped at zero, so a balance and its ledger disagreed (the floor now lives in
    admission and the live floor, which let a balance go below zero down to the overdraft)."""
    path, url = database
    engine = create_engine(url)
    writer = LedgerWriter(engine)
    writer.start()
    try:
        await writer.record(usage_row(1, 1_250_000), prepaid=True)
    finally:
        await writer.stop()
        await engine.dispose()
    with sqlite3.connect(path) as connection:
        balance, = connection.execute("SELECT balance_micro FROM users WHERE id = 1").fetchone()
        debited, = connection.execute("SELECT -sum(amount_micro) FROM ledger").fetchone()
    assert (balance, debited) == (1_000_000 - 1_250_000, 1_250_000)
