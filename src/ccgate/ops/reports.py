"""Reports for the console, the dashboard, the CLI and the admin API: usage, spend, traffic, the
report by user, key, model, account, day or session, and the ledger check."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ccgate.billing.audit import Finding, books_extent, check_ledger
from ccgate.billing.reports import GroupBy, ReportRow, usage_report
from ccgate.ops.common import OperationError, OperationsBase
from ccgate.store import repo

REPORT_GROUPS = tuple(group.value for group in GroupBy)


@dataclass(frozen=True)
class Overview:
    """Traffic, errors and spend of the last hour and day, for the operator console."""

    per_minute: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    spend_today_micro: int
    spend_24h_micro: int
    top_users: list[dict[str, Any]]


@dataclass(frozen=True)
class LedgerCheck:
    """The outcome of a ledger check: what is wrong (nothing, when the books balance) and what was covered."""

    findings: list[Finding]
    balances: int
    debits: int

    @property
    def ok(self) -> bool:
        return not self.findings

    def summary(self) -> str:
        if self.ok:
            return f"ledger check: OK ({self.balances} balances, {self.debits} debits)"
        return (f"ledger check: {len(self.findings)} problem(s) "
                f"over {self.balances} balances and {self.debits} debits")


def _day(text: str | None, label: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise OperationError(f"{label}: not a date: {text!r} (use YYYY-MM-DD, e.g. 2026-01-31)") from None


def _midnight_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def report_span(start: str | None, end: str | None) -> tuple[int | None, int | None]:
    """[since_ms, until_ms) of a report from `start` to `end`, both YYYY-MM-DD (UTC) and both included;
    either may be empty (from the first request, to the last)."""
    first, last = _day(start, "from"), _day(end, "to")
    if first and last and first > last:
        raise OperationError(f"from ({first}) is after to ({last})")
    return (_midnight_ms(first) if first else None, _midnight_ms(last + timedelta(days=1)) if last else None)


def report_group(by: str) -> GroupBy:
    try:
        return GroupBy(by)
    except ValueError:
        raise OperationError(f"a report is by one of {', '.join(REPORT_GROUPS)}, not {by!r}") from None


class ReportOperations(OperationsBase):
    async def usage_summary(self, **filters: Any) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            return await repo.usage_summary(conn, **filters)

    async def recent_requests(self, *, limit: int, **filters: Any) -> list[dict[str, Any]]:
        """The newest usage rows matching `filters` (user_id, key_id, model, since_ms, until_ms)."""
        async with self.engine.connect() as conn:
            return await repo.recent_usage(conn, limit=limit, **filters)

    async def overview(self) -> Overview:
        now = repo.now_ms()
        hour_ago, day_ago = now - 3_600_000, now - repo.DAY_MS
        async with self.engine.connect() as conn:
            return Overview(
                per_minute=await repo.requests_per_minute(conn, hour_ago),
                errors=await repo.errors_by_type(conn, hour_ago),
                spend_today_micro=await repo.spend_since(conn, now - now % repo.DAY_MS),
                spend_24h_micro=await repo.spend_since(conn, day_ago),
                top_users=await repo.top_spenders(conn, day_ago, 10),
            )

    async def report(self, by: str, start: str | None = None, end: str | None = None) -> list[ReportRow]:
        """Requests, tokens per class and cost per component by `by` (see billing.reports), from the
        day `start` to the day `end` (YYYY-MM-DD, UTC, both included; empty: unbounded)."""
        group = report_group(by)
        since_ms, until_ms = report_span(start, end)
        async with self.engine.connect() as conn:
            return await usage_report(conn, group, since_ms, until_ms)

    async def ledger_check(self) -> LedgerCheck:
        """Whether the books balance over the whole database (billing.audit)."""
        async with self.engine.connect() as conn:
            findings = await check_ledger(conn)
            balances, debits = await books_extent(conn)
        return LedgerCheck(findings, balances, debits)
