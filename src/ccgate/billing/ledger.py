"""The group-commit usage writer: many requests' rows and debits in one transaction."""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
import threading
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from sqlalchemy import URL, Table, bindparam, insert, update
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.dml import UpdateBase

from ccgate.obs.metrics import observe_ledger_commit
from ccgate.store.db import sqlite_pragmas
from ccgate.store.rows import USAGE_COLUMNS, UsageRow
from ccgate.store.schema import api_keys, ledger, usage, users

log = logging.getLogger("ccgate.ledger")

MAX_BATCH = 1000
CHECKPOINT_EVERY = 0.05  # seconds between the checkpointer's passes, while there are writes to copy
WRITER_CHECKPOINT_PAGES = 10_000  # the writer checkpoints by itself only past this many WAL pages
WAL_SIZE_LIMIT = 64 * 1024 * 1024  # bytes a WAL file is cut back to once it restarts
SQLITE = sqlite_dialect(paramstyle="named")
Params = dict[str, Any]  # one row's bound parameters


@dataclass(slots=True)
class UsageRecord:
    """One request's usage row, whether its cost comes off a prepaid balance, and who waits for it."""

    row: UsageRow
    prepaid: bool
    done: asyncio.Future[None] | None = None
    on_commit: Callable[[], None] | None = None


@dataclass(slots=True)
class Job:
    """Work that must not interleave with commits (reading balances the commits change)."""

    run: Callable[[], Awaitable[None]]
    done: asyncio.Future[None]


class LedgerWriter:
    """Queues usage records and commits whatever has gathered as one transaction.

    A request that must not send its last byte before its row is durable awaits
    `record`; the first record to arrive starts a commit at once, and the ones that
    arrive meanwhile ride on the next one, so a lone request waits for one commit and
    a crowd shares them.  Each record's `on_commit` runs in this task right after its
    commit, and exclusive jobs run between commits, so in-memory balances and the
    database never disagree about which debits they contain.
    """

    def __init__(self, engine: AsyncEngine, on_failure: Callable[[Exception], None] | None = None, *,
                 background_checkpoints: bool = True) -> None:
        self._engine = engine
        self._on_failure = on_failure
        self._sqlite = (SqliteBatchWriter(engine.url, background_checkpoints)
                        if engine.dialect.name == "sqlite" else None)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="ledger") if self._sqlite is not None else None
        self._records: deque[UsageRecord] = deque()
        self._jobs: deque[Job] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ledger-writer")

    async def stop(self) -> None:
        """Commit everything queued, then stop."""
        if self._task is None:
            return
        await self._idle.wait()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        if self._sqlite is not None and self._thread is not None:
            self._thread.submit(self._sqlite.close).result()
            self._thread.shutdown()

    def _submit(self, record: UsageRecord) -> None:
        self._records.append(record)
        self._idle.clear()
        self._wake.set()

    async def record(self, row: UsageRow, *, prepaid: bool, on_commit: Callable[[], None] | None = None) -> None:
        """Queue a row and return once it is committed; raises if the commit failed."""
        done = asyncio.get_running_loop().create_future()
        self._submit(UsageRecord(row, prepaid, done, on_commit))
        await done

    def record_later(self, row: UsageRow, *, prepaid: bool) -> None:
        """Queue a row without waiting for it (rows of requests that sent no billed answer)."""
        self._submit(UsageRecord(row, prepaid))

    async def exclusive(self, run: Callable[[], Awaitable[None]]) -> None:
        """Run `run` in the writer, between two commits."""
        done = asyncio.get_running_loop().create_future()
        self._jobs.append(Job(run, done))
        self._idle.clear()
        self._wake.set()
        await done

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._records or self._jobs:
                if self._records:
                    batch = [self._records.popleft() for _ in range(min(len(self._records), MAX_BATCH))]
                    await self._commit_batch(batch)
                while self._jobs:
                    job = self._jobs.popleft()
                    try:
                        await job.run()
                        job.done.set_result(None)
                    except Exception as exc:
                        job.done.set_exception(exc)
            self._idle.set()

    @property
    def depth(self) -> int:
        """Usage rows waiting for a commit (a backlog here means the database is slow or down)."""
        return len(self._records)

    async def _commit_batch(self, batch: list[UsageRecord]) -> None:
        started = time.perf_counter()
        try:
            await self._commit(batch)
            observe_ledger_commit(time.perf_counter() - started, len(self._records))
        except Exception as exc:  # the database is down: every waiter must hear it
            log.error("usage commit of %d rows failed: %s", len(batch), exc)
            if self._on_failure is not None:
                self._on_failure(exc)
            for record in batch:
                if record.done is not None and not record.done.done():
                    record.done.set_exception(exc)
            return
        for record in batch:
            if record.on_commit is not None:
                record.on_commit()
            if record.done is not None and not record.done.done():
                record.done.set_result(None)

    async def _commit(self, batch: list[UsageRecord]) -> None:
        writes = BatchWrites.of(batch)
        if self._sqlite is not None:  # one hop to the writer's thread per batch
            await asyncio.get_running_loop().run_in_executor(self._thread, self._sqlite.write, writes)
        else:
            async with self._engine.begin() as conn:
                await conn.run_sync(writes.execute)


@dataclass(slots=True)
class BatchWrites:
    """What one batch changes: usage rows, prepaid debits with their ledger entries, keys' last use."""

    usage_rows: list[UsageRow]
    ledger_rows: list[Params]
    debits: list[Params]
    last_used: list[Params]

    @classmethod
    def of(cls, batch: list[UsageRecord]) -> BatchWrites:
        debits: dict[int, int] = defaultdict(int)
        last_used: dict[str, int] = {}
        ledger_rows: list[Params] = []
        for record in batch:
            row = record.row
            last_used[row.key_id] = max(last_used.get(row.key_id, 0), row.created_ms)
            if record.prepaid and row.cost_micro:
                debits[row.user_id] += row.cost_micro
                ledger_rows.append({
                    "user_id": row.user_id, "kind": "request", "amount_micro": -row.cost_micro,
                    "request_id": row.request_id, "note": row.model, "created_ms": row.created_ms,
                })
        return cls([record.row for record in batch], ledger_rows,
                   [{"uid": uid, "amount": amount} for uid, amount in debits.items()],
                   [{"kid": kid, "ts": ts} for kid, ts in last_used.items()])

    def statements(self, *, with_usage: bool = True) -> list[tuple[UpdateBase, list[Params]]]:
        """The batch as SQLAlchemy Core statements with their parameter lists (empty ones left out).
        The statements are built once and reused, so their compiled forms are too."""
        plan: list[tuple[UpdateBase, list[Params]]] = []
        if with_usage and self.usage_rows:
            plan.append((USAGE_INSERT, [row.as_dict() for row in self.usage_rows]))
        if self.ledger_rows:
            plan.append((_insert(ledger, tuple(self.ledger_rows[0])), self.ledger_rows))
        return plan + [(statement, rows) for statement, rows in ((DEBIT, self.debits), (LAST_USED, self.last_used))
                       if rows]

    def execute(self, conn: Connection) -> None:
        for statement, rows in self.statements():
            conn.execute(statement, rows)


@functools.cache
def _insert(table: Table, columns: tuple[str, ...]) -> UpdateBase:
    """An INSERT naming these columns (one SQL text, for executemany)."""
    return insert(table).values({name: bindparam(name) for name in columns})


# Exact: a balance may go below zero (down to the user's overdraft, which admission and the live floor
# keep); clamping here would make the balance and the ledger disagree.
DEBIT = update(users).where(users.c.id == bindparam("uid")).values(
    balance_micro=users.c.balance_micro - bindparam("amount"))
USAGE_INSERT = insert(usage).values({name: bindparam(name) for name in USAGE_COLUMNS})
# The same INSERT with positional parameters, for the SQLite writer: a row binds as a tuple of its values,
# where 34 named parameters cost a name lookup each.
_USAGE_INSERT_QMARK = USAGE_INSERT.compile(dialect=sqlite_dialect(paramstyle="qmark"))
USAGE_INSERT_SQLITE = str(_USAGE_INSERT_QMARK)
usage_values = attrgetter(*_USAGE_INSERT_QMARK.positiontup or ())  # a row's values in the INSERT's order
LAST_USED = update(api_keys).where(api_keys.c.id == bindparam("kid")).values(last_used_ms=bindparam("ts"))


class SqliteBatchWriter:
    """Commits batches on one SQLite connection owned by the writer's thread, with each Core statement
    compiled to SQL once: SQLAlchemy's per-statement work (~100 us) and aiosqlite's per-statement
    thread hop would otherwise cost more than the writes themselves (measured: 900 -> 60 us a batch)."""

    def __init__(self, url: URL, background_checkpoints: bool) -> None:
        assert url.database is not None, "an SQLite URL names its file"
        self._path = url.database
        self._background_checkpoints = background_checkpoints
        self._connection: sqlite3.Connection | None = None
        self._checkpointer: Checkpointer | None = None
        self._sql: dict[UpdateBase, str] = {}

    def write(self, writes: BatchWrites) -> None:
        if self._connection is None:  # made in the writer's thread, used only there
            self._connection = sqlite3.connect(self._path, isolation_level=None)
            sqlite_pragmas(self._connection, None)
            if self._background_checkpoints:
                self._connection.execute(f"PRAGMA wal_autocheckpoint={WRITER_CHECKPOINT_PAGES}")
                self._connection.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
                self._checkpointer = Checkpointer(self._path)
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            if writes.usage_rows:
                connection.executemany(USAGE_INSERT_SQLITE, [usage_values(row) for row in writes.usage_rows])
            for statement, rows in writes.statements(with_usage=False):
                connection.executemany(self._compiled(statement), rows)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        if self._checkpointer is not None:
            self._checkpointer.wrote()

    def _compiled(self, statement: UpdateBase) -> str:
        sql = self._sql.get(statement)
        if sql is None:
            sql = self._sql[statement] = str(statement.compile(dialect=SQLITE))
        return sql

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
        if self._connection is not None:
            self._connection.close()


class Checkpointer:
    """Copies the write-ahead log into the database from a thread and connection of its own, so no
    commit waits for it: SQLite's automatic checkpoint runs inside the commit that takes the log past
    1,000 pages (~2 ms, one request in ~170).  A pass cannot let the log restart while commits keep
    coming; then the writer's own, far rarer checkpoint (WRITER_CHECKPOINT_PAGES) bounds the log, and
    finds little left to copy.  Only for a lone server process: where several commit to one file, the
    passes never let the log restart (measured: ~35 MB of log against ~5 MB with SQLite's own)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._wrote = threading.Event()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpointer", daemon=True)
        self._thread.start()

    def wrote(self) -> None:
        """A commit added to the log."""
        self._wrote.set()

    def close(self) -> None:
        self._closing.set()
        self._wrote.set()
        self._thread.join()

    def _run(self) -> None:
        connection = sqlite3.connect(self._path, isolation_level=None)
        try:
            while self._wrote.wait() and not self._closing.wait(CHECKPOINT_EVERY):
                self._wrote.clear()
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as error:  # the writer's own checkpoints carry on
            log.error("the background checkpoint stopped: %s", error)
        finally:
            connection.close()
