"""Settlement: capture what a request used, price it, and commit its usage row and debit."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

import orjson

from ccgate.billing.ledger import LedgerWriter
from ccgate.billing.prices import Usage
from ccgate.dialects.sse import event_data, event_name
from ccgate.store.rows import UsageRow

log = logging.getLogger("ccgate.settle")


class Hold(Protocol):
    """What admission lent the request (gate.admission.Ticket): given back exactly once."""

    def on_commit(self, usage: Usage, cost: int) -> Callable[[], None]: ...

    def release(self) -> None: ...


def capture_usage(usage: Usage, blocks: list[bytes]) -> tuple[bool, str | None]:
    """Fold the usage of whole stream events into `usage`: input and cache tokens from
    `message_start`, output from the last `message_delta`.  Returns (answer over, error type)."""
    over, error_type = False, None
    for block in blocks:
        name = event_name(block)
        if name == b"message_start":
            usage.update(orjson.loads(event_data(block))["message"].get("usage") or {})
        elif name == b"message_delta":
            usage.update(orjson.loads(event_data(block)).get("usage") or {})
        elif name == b"message_stop":
            over = True
        elif name == b"error":
            error_type = (orjson.loads(event_data(block)).get("error") or {}).get("type", "error")
            over = True
    return over, error_type


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
