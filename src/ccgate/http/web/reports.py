"""Usage summaries (rows per day, model and key) folded into what the usage page shows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

EPOCH = date(1970, 1, 1)


@dataclass
class Totals:
    """Requests, tokens and cost of some slice of usage."""

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_micro: int = 0

    def add(self, row: dict) -> None:
        for name in ("requests", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
                     "cost_micro"):
            setattr(self, name, getattr(self, name) + int(row[name] or 0))

    @property
    def cache_hit_rate(self) -> float | None:
        """The share of prompt tokens read from the prompt cache; None with no prompt tokens."""
        prompt = self.input_tokens + self.cache_read_tokens + self.cache_write_tokens
        return self.cache_read_tokens / prompt if prompt else None


@dataclass
class UsageReport:
    """Every day of a span (empty ones too), each model used (dearest first), and the whole."""

    days: list[date]
    per_day: list[Totals]
    per_model: dict[str, Totals]
    total: Totals = field(default_factory=Totals)


def build_report(rows: list[dict], first: date, last: date) -> UsageReport:
    days = [first + timedelta(days=offset) for offset in range((last - first).days + 1)]
    per_day = [Totals() for _ in days]
    per_model: dict[str, Totals] = {}
    total = Totals()
    for row in rows:
        offset = (EPOCH + timedelta(days=int(row["day"])) - first).days
        if 0 <= offset < len(days):
            per_day[offset].add(row)
        per_model.setdefault(row["model"], Totals()).add(row)
        total.add(row)
    ranked = dict(sorted(per_model.items(), key=lambda item: -item[1].cost_micro))
    return UsageReport(days, per_day, ranked, total)
