"""The benchmark's table: one row per measure, the floor and ccgate side by side, and the targets."""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.procs import ROOT, Cores

FORMATS = {"req/s": "{:,.0f}", "ms": "{:.2f}", "µs": "{:.1f}", "MB": "{:.0f}"}


@dataclass(frozen=True)
class Goal:
    """A target of issue 9 and how to tell whether ccgate's number (with the floor's) meets it."""

    text: str
    met: Callable[[float, float | None], bool]


def at_most(limit: float, unit: str) -> Goal:
    return Goal(f"≤ {limit:g} {unit}", lambda value, floor: value <= limit)


def throughput_goal(minimum: float, share: float) -> Goal:
    return Goal(f"≥ {minimum:,.0f} req/s and ≥ {share:.0%} of floor",
                lambda value, floor: value >= minimum and floor is not None and value >= share * floor)


@dataclass
class Row:
    """One measure; latency rows hold the direct time and, for floor and ccgate, the time added."""

    measure: str
    unit: str
    direct: float | None = None
    floor: float | None = None
    ccgate: float | None = None
    goal: Goal | None = None
    absent: str | None = None  # why there is no number, e.g. "not available yet"

    def cells(self) -> list[str]:
        if self.absent is not None:
            return [f"{self.measure} ({self.unit})", "", "", self.absent, "", self.goal.text if self.goal else "",
                    "—"]
        return [f"{self.measure} ({self.unit})", self._number(self.direct), self._number(self.floor),
                self._number(self.ccgate), self._ratio(), self.goal.text if self.goal else "", self._met()]

    def as_json(self) -> dict:
        return {"measure": self.measure, "unit": self.unit, "direct": self.direct, "floor": self.floor,
                "ccgate": self.ccgate, "target": self.goal.text if self.goal else None, "absent": self.absent,
                "met": self._met() or None}

    def _number(self, value: float | None) -> str:
        return "" if value is None else FORMATS[self.unit].format(value)

    def _ratio(self) -> str:
        if self.ccgate is None or not self.floor or self.floor <= 0:
            return ""
        return f"{self.ccgate / self.floor:.2f}"

    def _met(self) -> str:
        if self.goal is None or self.ccgate is None:
            return ""
        return "yes" if self.goal.met(self.ccgate, self.floor) else "**no**"


def markdown_table(rows: list[Row]) -> str:
    lines = ["| measure | direct | floor | ccgate | ccgate/floor | target | met? |",
             "|---|--:|--:|--:|--:|---|---|"]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def revision(commit: str | None) -> str:
    """The ccgate measured, told before the run starts (others may commit meanwhile): a commit
    exported from git, or this checkout (marked if its src/ has changes)."""
    if commit is not None:
        return f"ccgate {commit[:7]} (exported from git)"
    dirty = git("status", "--porcelain", "src")
    return f"ccgate {git('rev-parse', '--short', 'HEAD')}" + (" + uncommitted changes in src/" if dirty else "")


def wrk_version() -> str:
    result = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    return (result.stdout or result.stderr).split(" Copyright")[0].strip()


def report(rows: list[Row], notes: list[str], *, measured: str, cores: Cores, smoke: bool) -> str:
    """The whole result: when and where it was measured, the table, and the notes that explain it."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = [
        "# ccgate benchmark" + (" (smoke run: too short to mean anything)" if smoke else ""),
        "",
        f"- date: {now}; {measured}",
        f"- machine: {cpu_model()}, nproc {os.cpu_count()}, Linux {platform.release()}; "
        f"Python {platform.python_version()}; {wrk_version()}",
        f"- pinning: {cores.describe()}",
        "",
        "",
    ]
    return "\n".join(header) + markdown_table(rows) + "\n\n" + "\n".join(f"- {note}" for note in notes) + "\n"
