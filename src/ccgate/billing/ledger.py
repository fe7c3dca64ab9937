"""The group-commit usage writer: many requests' rows and debits in one transaction."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import bindparam, case, insert, update
from sqlalchemy.ext.asyncio import AsyncEngine

from ccgate.store.schema import api_keys, ledger, usage, users

log = logging.getLogger("ccgate.ledger")

MAX_BATCH = 1000


@dataclass(slots=True)
class UsageRecord:
    """One request's usage row, whether its cost comes off a prepaid balance, and who waits for it."""

    row: dict
    prepaid: bool
    done: asyncio.Future | None = None
    on_commit: Callable[[], None] | None = None


@dataclass(slots=True)
class Job:
    """Work that must not interleave with commits (reading balances the commits change)."""

    run: Callable[[], Awaitable[None]]
    done: asyncio.Future


class LedgerWriter:
    """Queues usage records and commits whatever has gathered as one transaction.

    A request that must not send its last byte before its row is durable awaits
    `record`; the first record to arrive starts a commit at once, and the ones that
    arrive meanwhile ride on the next one, so a lone request waits for one commit and
    a crowd shares them.  Each record's `on_commit` runs in this task right after its
    commit, and exclusive jobs run between commits, so in-memory balances and the
    database never disagree about which debits they contain.
    """

    def __init__(self, engine: AsyncEngine, on_failure: Callable[[Exception], None] | None = None) -> None:
        self._engine = engine
        self._on_failure = on_failure
        self._records: deque[UsageRecord] = deque()
        self._jobs: deque[Job] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ledger-writer")

    async def stop(self) -> None:
        """Commit everything queued, then stop."""
        if self._task is None:
            return
        await self._idle.wait()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def _submit(self, record: UsageRecord) -> None:
        self._records.append(record)
        self._idle.clear()
        self._wake.set()

    async def record(self, row: dict, *, prepaid: bool, on_commit: Callable[[], None] | None = None) -> None:
        """Queue a row and return once it is committed; raises if the commit failed."""
        done = asyncio.get_running_loop().create_future()
        self._submit(UsageRecord(row, prepaid, done, on_commit))
        await done

    def record_later(self, row: dict, *, prepaid: bool) -> None:
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

    async def _commit_batch(self, batch: list[UsageRecord]) -> None:
        try:
            await self._commit(batch)
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
        debits: dict[int, int] = defaultdict(int)
        last_used: dict[str, int] = {}
        ledger_rows = []
        for record in batch:
            row = record.row
            last_used[row["key_id"]] = max(last_used.get(row["key_id"], 0), row["created_ms"])
            if record.prepaid and row["cost_micro"]:
                debits[row["user_id"]] += row["cost_micro"]
                ledger_rows.append({
                    "user_id": row["user_id"], "kind": "request", "amount_micro": -row["cost_micro"],
                    "request_id": row["request_id"], "note": row["model"], "created_ms": row["created_ms"],
                })
        async with self._engine.begin() as conn:
            await conn.execute(insert(usage), [record.row for record in batch])
            if ledger_rows:
                await conn.execute(insert(ledger), ledger_rows)
            if debits:
                await conn.execute(
                    update(users).where(users.c.id == bindparam("uid")).values(balance_micro=case(
                        (users.c.balance_micro >= bindparam("amount"), users.c.balance_micro - bindparam("amount")),
                        else_=0)),
                    [{"uid": uid, "amount": amount} for uid, amount in debits.items()],
                )
            await conn.execute(
                update(api_keys).where(api_keys.c.id == bindparam("kid")).values(last_used_ms=bindparam("ts")),
                [{"kid": kid, "ts": ts} for kid, ts in last_used.items()],
            )
