"""`ccgate ledger check` and `ccgate report`: do the books balance, and who used what."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ccgate.billing.prices import COMPONENTS
from ccgate.billing.reports import COUNTS, GroupBy, ReportRow, render_csv
from ccgate.cli.common import command, group, usd, with_operations
from ccgate.ops import REPORT_GROUPS, Operations

NANO_PER_MICRO = 1_000
COLUMNS = ("requests", "input", "output", "cache read", "cache write 5m", "cache write 1h", "cost")


def check_ledger(args: argparse.Namespace) -> None:
    balanced = []

    async def action(ops: Operations) -> None:
        check = await ops.ledger_check()
        for finding in check.findings:
            print(finding.describe())
        print(check.summary())
        balanced.append(check.ok)

    with_operations(action)
    if not all(balanced):
        sys.exit(1)


def components(row: ReportRow) -> str:
    """The cost components that are not zero, e.g. "input $0.01, output $0.12, web search $0.02 (2 uses)"."""
    parts = []
    for name in COMPONENTS:
        if row.cost_nano[name]:
            uses = row.counts.get(f"{name}_requests")
            parts.append(f"{name.replace('_', ' ')} {usd(-(-row.cost_nano[name] // NANO_PER_MICRO))}"
                         + (f" ({uses} uses)" if uses else ""))
    return ", ".join(parts)


def report_table(by: GroupBy, rows: list[ReportRow]) -> list[str]:
    """The report as aligned text lines: one per group, then the total."""
    cells = [[by.value, *COLUMNS, "cost by component"]]
    for row in rows:
        counts = [f"{row.counts[name]:,}" for name in COUNTS[:5]]
        cells.append([row.group, f"{row.requests:,}", *counts, usd(row.cost_micro), components(row)])
    widths = [max(len(line[i]) for line in cells) for i in range(len(cells[0]))]
    lines = ["  ".join(cell.ljust(width) if i in (0, len(widths) - 1) else cell.rjust(width)
                       for i, (cell, width) in enumerate(zip(line, widths, strict=True))).rstrip() for line in cells]
    total = sum(row.cost_micro for row in rows)
    lines.append(f"total: {sum(row.requests for row in rows):,} requests, {usd(total)}")
    return lines


def report(args: argparse.Namespace) -> None:
    async def action(ops: Operations) -> None:
        rows = await ops.report(args.by, args.start, args.end)
        by = GroupBy(args.by)
        if args.csv:
            print(render_csv(by, rows), end="")
        else:
            print("\n".join(report_table(by, rows)))

    with_operations(action)


def register(commands: Any) -> None:
    ledger = group(commands, "ledger", "the prepaid-credit ledger")
    command(ledger, "check", check_ledger, "check that every balance equals its ledger and every request is debited "
            "its cost exactly once; exits 1 and lists what is wrong otherwise")
    parser: argparse.ArgumentParser = command(
        commands, "report", report, "requests, tokens per class and cost per component, by user, key, model, "
        "account (what Anthropic invoices it, at list price), day or Claude Code session")
    parser.add_argument("--by", choices=REPORT_GROUPS, required=True)
    parser.add_argument("--from", dest="start", metavar="DATE", help="first day, YYYY-MM-DD (UTC), included")
    parser.add_argument("--to", dest="end", metavar="DATE", help="last day, YYYY-MM-DD (UTC), included")
    parser.add_argument("--csv", action="store_true", help="CSV on standard output (costs in USD)")
