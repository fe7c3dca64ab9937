"""`ledger check`: does the money add up over the whole database?

Every prepaid balance must equal the sum of its ledger entries, every request debit must equal its
usage row's cost, no request may be debited twice, no debit may lack its request, and no prepaid
user's priced request may go undebited.  Each check is one aggregate query, so it runs in the
database however many rows there are.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Select, and_, exists, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ccgate.store.schema import ledger, usage, users

REQUEST = "request"  # the ledger kind of a request's debit


class FindingKind(StrEnum):
    BALANCE_MISMATCH = "balance_mismatch"  # a prepaid balance is not the sum of its ledger entries
    DEBIT_MISMATCH = "debit_mismatch"  # a request's debit is not its usage row's cost
    DOUBLE_DEBIT = "double_debit"  # a request has more than one debit
    DEBIT_WITHOUT_USAGE = "debit_without_usage"  # a debit names a request with no usage row
    UNDEBITED_REQUEST = "undebited_request"  # a prepaid user's request with a cost and no debit


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing wrong.  `expected` is what the books say it should be, `found` what it is."""

    kind: FindingKind
    user_id: int
    request_id: str | None
    expected_micro: int
    found_micro: int

    def describe(self) -> str:
        subject = f"user {self.user_id}" + (f", request {self.request_id}" if self.request_id else "")
        what = {
            FindingKind.BALANCE_MISMATCH: "balance is {found} but its ledger entries sum to {expected}",
            FindingKind.DEBIT_MISMATCH: "debited {found} but its usage row costs {expected}",
            FindingKind.DOUBLE_DEBIT: "debited {found} in several entries; its usage row costs {expected}",
            FindingKind.DEBIT_WITHOUT_USAGE: "debited {found} but there is no usage row for it",
            FindingKind.UNDEBITED_REQUEST: "costs {expected} but was never debited",
        }[self.kind]
        return f"{self.kind}: {subject}: " + what.format(found=self.found_micro, expected=self.expected_micro)


def _debits() -> Select[tuple[str, int, int, int]]:
    """Per request: its user, the number of debit entries and the amount debited."""
    return (select(ledger.c.request_id, ledger.c.user_id, func.count().label("entries"),
                   (-func.sum(ledger.c.amount_micro)).label("debited"))
            .where(ledger.c.kind == REQUEST, ledger.c.request_id.is_not(None))
            .group_by(ledger.c.request_id, ledger.c.user_id))


async def _balances(conn: AsyncConnection) -> list[Finding]:
    sums = (select(ledger.c.user_id, func.sum(ledger.c.amount_micro).label("total"))
            .group_by(ledger.c.user_id).subquery())
    total = func.coalesce(sums.c.total, 0)
    rows = await conn.execute(select(users.c.id, users.c.balance_micro, total)
                              .outerjoin(sums, sums.c.user_id == users.c.id)
                              .where(users.c.balance_micro.is_not(None), users.c.balance_micro != total))
    return [Finding(FindingKind.BALANCE_MISMATCH, user_id, None, int(expected), balance)
            for user_id, balance, expected in rows]


async def _debit_findings(conn: AsyncConnection) -> list[Finding]:
    debits = _debits().subquery()
    rows = await conn.execute(select(debits, usage.c.cost_micro)
                              .outerjoin(usage, usage.c.request_id == debits.c.request_id)
                              .where((debits.c.entries > 1) | usage.c.cost_micro.is_(None)
                                     | (usage.c.cost_micro != debits.c.debited)))
    findings = []
    for request_id, user_id, entries, debited, cost in rows:
        kind = (FindingKind.DEBIT_WITHOUT_USAGE if cost is None else
                FindingKind.DOUBLE_DEBIT if entries > 1 else FindingKind.DEBIT_MISMATCH)
        findings.append(Finding(kind, user_id, request_id, cost or 0, int(debited)))
    return findings


async def _undebited(conn: AsyncConnection) -> list[Finding]:
    """Priced requests of prepaid users without a debit, made since the user's first ledger entry (when
    the user became prepaid: a postpaid user's earlier requests are rightly undebited)."""
    prepaid_since = (select(ledger.c.user_id, func.min(ledger.c.created_ms).label("since"))
                     .group_by(ledger.c.user_id).subquery())
    debited = exists().where(and_(ledger.c.request_id == usage.c.request_id, ledger.c.kind == REQUEST))
    rows = await conn.execute(
        select(usage.c.user_id, usage.c.request_id, usage.c.cost_micro)
        .join(users, users.c.id == usage.c.user_id)
        .join(prepaid_since, prepaid_since.c.user_id == usage.c.user_id)
        .where(users.c.balance_micro.is_not(None), usage.c.cost_micro > 0,
               usage.c.created_ms >= prepaid_since.c.since, ~debited))
    return [Finding(FindingKind.UNDEBITED_REQUEST, user_id, request_id, cost, 0) for user_id, request_id, cost in rows]


async def books_extent(conn: AsyncConnection) -> tuple[int, int]:
    """What a check covers: the number of prepaid balances and of request debits."""
    balances = await conn.scalar(select(func.count()).select_from(users).where(users.c.balance_micro.is_not(None)))
    debits = await conn.scalar(select(func.count()).select_from(ledger).where(ledger.c.kind == REQUEST))
    return int(balances or 0), int(debits or 0)


async def check_ledger(conn: AsyncConnection) -> list[Finding]:
    """Everything wrong with the books, by kind, then user, then request; empty when they balance."""
    findings = await _balances(conn) + await _debit_findings(conn) + await _undebited(conn)
    return sorted(findings, key=lambda f: (list(FindingKind).index(f.kind), f.user_id, f.request_id or ""))


async def check_ledger_at(url: str) -> list[Finding]:
    """`check_ledger` on the database at `url` (its own engine, disposed after)."""
    from ccgate.store.db import create_engine

    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await check_ledger(conn)
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    """`python -m ccgate.billing.audit DATABASE_URL`: print each finding; exit 1 if there is any."""
    parser = argparse.ArgumentParser(prog="python -m ccgate.billing.audit", description=main.__doc__)
    parser.add_argument("database_url")
    findings = asyncio.run(check_ledger_at(parser.parse_args(argv).database_url))
    for finding in findings:
        print(finding.describe())
    print(f"ledger check: {len(findings)} problem(s)" if findings else "ledger check: the books balance")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
