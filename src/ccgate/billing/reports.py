"""`report --by user|key|model|account|day|session --from --to [--csv]`: requests, tokens per class and cost
per component over a time span.

By user, key, model, day and Claude Code session (x-claude-code-session-id) the cost is what users
were debited (markup included), summed from the usage rows' cost columns.  By account it is what
Anthropic invoices that account: the tokens its requests really used (cache writes a session move
caused included; answers served from the gateway's cache excluded, as they never reached it) priced
at list price, without markup, by today's catalog (a model no longer in the catalog falls back to
what was debited).
"""

from __future__ import annotations

import csv
import dataclasses
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Select, func, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ccgate.billing.prices import (
    BASIS_POINTS,
    COMPONENTS,
    NANO_PER_MICRO,
    SCALE,
    ModelPrice,
    RequestFlags,
    Usage,
    cost,
)
from ccgate.store import repo
from ccgate.store.rows import USAGE_COST_COLUMNS
from ccgate.store.schema import accounts, usage, users

DAY_MS = 86_400_000
COUNTS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens",
          "web_search_requests", "web_fetch_requests")
NANO: int = SCALE // NANO_PER_MICRO  # exact cost units per nano-dollar
NO_ACCOUNT = "(none)"  # requests that reached no upstream account
NO_SESSION = "(none)"  # requests that named no Claude Code session


class GroupBy(StrEnum):
    USER = "user"
    KEY = "key"
    MODEL = "model"
    ACCOUNT = "account"
    DAY = "day"
    SESSION = "session"


@dataclass(slots=True)
class ReportRow:
    """One group's totals; costs per component in nano-dollars, the total in micro-dollars."""

    group: str
    requests: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    cost_nano: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COMPONENTS, 0))
    cost_micro: int = 0


def _group_column(by: GroupBy) -> ColumnElement[Any]:
    if by is GroupBy.USER:
        return users.c.email
    if by is GroupBy.KEY:
        return usage.c.key_id
    if by is GroupBy.MODEL:
        return usage.c.model
    if by is GroupBy.ACCOUNT:
        return func.coalesce(accounts.c.name, literal(NO_ACCOUNT))
    if by is GroupBy.SESSION:
        return func.coalesce(usage.c.session_id, literal(NO_SESSION))
    return usage.c.created_ms // DAY_MS


def _sums() -> list[ColumnElement[Any]]:
    return [func.count().label("requests"),
            *(func.coalesce(func.sum(usage.c[name]), 0).label(name) for name in (*COUNTS, *USAGE_COST_COLUMNS)),
            func.coalesce(func.sum(usage.c.cost_micro), 0).label("cost_micro")]


def _span(query: Select[Any], since_ms: int | None, until_ms: int | None) -> Select[Any]:
    if since_ms is not None:
        query = query.where(usage.c.created_ms >= since_ms)
    if until_ms is not None:
        query = query.where(usage.c.created_ms < until_ms)
    return query


def _label(by: GroupBy, value: Any) -> str:
    if by is GroupBy.DAY:
        return datetime.fromtimestamp(int(value) * DAY_MS / 1000, UTC).date().isoformat()
    return str(value)


def _debited(row: dict[str, Any], group: str) -> ReportRow:
    return ReportRow(group, int(row["requests"]), {name: int(row[name]) for name in COUNTS},
                     {name: int(row[f"cost_{name}_nano"]) for name in COMPONENTS}, int(row["cost_micro"]))


async def usage_report(conn: AsyncConnection, by: GroupBy, since_ms: int | None = None,
                       until_ms: int | None = None) -> list[ReportRow]:
    """The report's rows, ordered by group, over usage created in [since_ms, until_ms)."""
    if by is GroupBy.ACCOUNT:
        return await _account_report(conn, since_ms, until_ms)
    group = _group_column(by).label("grp")
    query = select(group, *_sums()).select_from(usage)
    if by is GroupBy.USER:
        query = query.join(users, users.c.id == usage.c.user_id)
    query = _span(query.group_by(group).order_by(group), since_ms, until_ms)
    return [_debited(dict(row), _label(by, row["grp"])) for row in (await conn.execute(query)).mappings()]


async def _account_report(conn: AsyncConnection, since_ms: int | None, until_ms: int | None) -> list[ReportRow]:
    """Per account, at list price: groups of requests priced alike are summed in SQL and priced here."""
    prices = {row["id"]: dataclasses.replace(ModelPrice.from_row(row), markup_bp=BASIS_POINTS)
              for row, _ in await repo.models_with_aliases(conn)}
    group = _group_column(GroupBy.ACCOUNT).label("grp")
    alike = (usage.c.model, usage.c.speed, usage.c.inference_geo, usage.c.long_context)
    query = (select(group, *alike, *_sums()).select_from(usage)
             .outerjoin(accounts, accounts.c.id == usage.c.account_id)
             .where(usage.c.cache_hit.is_(False)).group_by(group, *alike))
    exact: dict[str, dict[str, int]] = {}
    report: dict[str, ReportRow] = {}
    for row in (await conn.execute(_span(query, since_ms, until_ms))).mappings():
        name = row["grp"]
        total = report.setdefault(name, ReportRow(name))
        total.requests += int(row["requests"])
        for count in COUNTS:
            total.counts[count] += int(row[count])
        price = prices.get(row["model"])
        if price is None:  # priced by nothing we know: count what was debited
            components = {c: int(row[f"cost_{c}_nano"]) * NANO for c in COMPONENTS}
        else:
            flags = RequestFlags(fast=row["speed"] == "fast", us_only=row["inference_geo"] == "us")
            used = Usage(**{count: int(row[count]) for count in COUNTS})
            components = cost(price, flags, used, long_context=bool(row["long_context"])).components()
        sums = exact.setdefault(name, dict.fromkeys(COMPONENTS, 0))
        for component, value in components.items():
            sums[component] += value
    for name, sums in exact.items():
        report[name].cost_nano = {c: -(-value // NANO) for c, value in sums.items()}
        report[name].cost_micro = -(-sum(sums.values()) // SCALE)
    return [report[name] for name in sorted(report)]


def render_csv(by: GroupBy, rows: list[ReportRow]) -> str:
    """The report as CSV: one line per group; costs in US dollars (components to the nano-dollar)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([by.value, "requests", *COUNTS, *(f"cost_{name}_usd" for name in COMPONENTS), "cost_usd"])
    for row in rows:
        writer.writerow([_as_text(row.group), row.requests, *(row.counts[name] for name in COUNTS),
                         *(_dollars(row.cost_nano[name], 9) for name in COMPONENTS), _dollars(row.cost_micro, 6)])
    return out.getvalue()


def _as_text(value: str) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula (session ids come from clients)."""
    return "'" + value if value.startswith(("=", "+", "-", "@", "\t", "\r")) else value


def _dollars(amount: int, decimals: int) -> str:
    """An integer amount of 10^-decimals dollars, written exactly."""
    whole, part = divmod(amount, 10 ** decimals)
    return f"{whole}.{part:0{decimals}d}"
