"""Settlement: commit a priced request's usage row and its exact debit."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from ccgate.billing.ledger import LedgerWriter
from ccgate.billing.prices import Usage
from ccgate.store.rows import UsageRow

log = logging.getLogger("ccgate.settle")


class Hold(Protocol):
    """What admission lent the request (gate.admission.Ticket): given back exactly once."""

    def on_commit(self, usage: Usage, cost: int) -> Callable[[], None]: ...

    def release(self) -> None: ...


class Settler:
    """Commits usage rows through the group-commit ledger writer."""

    def __init__(self, writer: LedgerWriter) -> None:
        self.writer = writer

    async def settle(self, row: UsageRow, budget_use: Usage, hold: Hold, *, prepaid: bool) -> None:
        """Commit the row and its exact debit (never capped at the hold), then give the hold back (from the
        writer, right after the commit, so the hold never lapses before its debit exists); raises if the
        database failed."""
        try:
            await self.writer.record(row, prepaid=prepaid, on_commit=hold.on_commit(budget_use, row.cost_micro))
        except Exception:
            hold.release()
            raise

    async def settle_quietly(self, row: UsageRow, budget_use: Usage, hold: Hold, *, prepaid: bool) -> bool:
        """`settle` for a stream already under way: a failure is logged and reported, not raised."""
        try:
            await self.settle(row, budget_use, hold, prepaid=prepaid)
            return True
        except Exception as exc:
            log.error("settling %s failed: %s", row.request_id, exc)
            return False

    def record_later(self, row: UsageRow) -> None:
        """Record a request that was answered with an error (nothing billed, nothing to wait for)."""
        self.writer.record_later(row, prepaid=False)
