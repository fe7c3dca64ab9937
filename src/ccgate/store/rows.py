"""Typed rows that travel between layers: one definition each."""

from __future__ import annotations

from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any


@dataclass(slots=True)
class UsageRow:
    """One request's usage row: what the pipeline records, the ledger writes and the API shows."""

    request_id: str
    key_id: str
    user_id: int
    model: str
    dialect: str
    status: int
    streamed: bool
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    cost_micro: int = 0
    session_moved: bool = False
    latency_ms: int = 0
    ttft_ms: int | None = None
    account_id: int | None = None
    upstream_request_id: str | None = None
    error_type: str | None = None
    cache_hit: bool = False
    created_ms: int = 0
    session_id: str | None = None  # the client's x-claude-code-session-id, for cost per session
    # The price flags and server tool uses (billing.prices.RequestFlags, Usage).
    speed: str | None = None
    inference_geo: str | None = None
    long_context: bool = False
    web_search_requests: int = 0
    web_fetch_requests: int = 0
    # Each cost component, markup included, in nano-dollars rounded up (cost_micro is their exact sum
    # rounded up once); columns, not JSON, so reports sum them in SQL.
    cost_input_nano: int = 0
    cost_output_nano: int = 0
    cost_cache_write_5m_nano: int = 0
    cost_cache_write_1h_nano: int = 0
    cost_cache_read_nano: int = 0
    cost_web_search_nano: int = 0
    cost_web_fetch_nano: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The row as column values, for an INSERT."""
        return dict(zip(USAGE_COLUMNS, _values(self), strict=True))

    @classmethod
    def from_mapping(cls, row: dict[str, Any]) -> UsageRow:
        return cls(**{name: row[name] for name in USAGE_COLUMNS})


USAGE_COLUMNS: tuple[str, ...] = tuple(field.name for field in fields(UsageRow))
_values = attrgetter(*USAGE_COLUMNS)  # every column's value in one C call
COST_COMPONENTS = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read", "web_search", "web_fetch")
USAGE_COST_COLUMNS = tuple(f"cost_{name}_nano" for name in COST_COMPONENTS)


def split_list(text: str | None) -> frozenset[str] | None:
    """A stored comma list as a set; empty means no restriction."""
    items = frozenset(item.strip() for item in (text or "").split(",") if item.strip())
    return items or None
