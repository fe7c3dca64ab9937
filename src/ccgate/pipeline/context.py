"""The one context a request carries through admission, routing, relay and billing."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ccgate.billing.prices import NO_FLAGS, ModelPrice, RequestFlags, Usage, cost
from ccgate.billing.usage_view import price_row
from ccgate.dialects.dialect import Dialect
from ccgate.gate.keys import KeyRecord
from ccgate.ids import request_id
from ccgate.relay.forward import Trail
from ccgate.route.pool import Account
from ccgate.store.rows import UsageRow


@dataclass(slots=True)
class Call:
    """A request in flight: who asked, for what, where it went, and what it used."""

    dialect: Dialect
    route: str = ""  # which API route, for metrics and traces
    request_id: str = field(default_factory=request_id)
    started: float = field(default_factory=time.perf_counter)
    created_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    key: KeyRecord | None = None
    model: ModelPrice | None = None
    stream: bool = False
    max_tokens: int = 0
    body_size: int = 0
    flags: RequestFlags = NO_FLAGS  # what the request asked for that changes its price
    wants_1h_cache: bool = False  # the body asks for a 1-hour cache TTL (for the expected cost)
    account: Account | None = None
    usage: Usage = field(default_factory=Usage)
    status: int = 200
    ttft_ms: int | None = None
    upstream_request_id: str | None = None
    error_type: str | None = None
    cache_hit: bool = False
    session: str | None = None
    session_moved: bool = False
    cost_micro: int | None = None  # set when the price is not the list price of the usage (a cache hit)
    cache_key: str | None = None
    cache_status: str | None = None  # HIT, MISS or BYPASS, for the X-Cache header
    cache_lead: bool = False  # identical requests wait for this one (coalescing)
    session_id: str | None = None  # the client's x-claude-code-session-id, for cost per session
    refusal: str | None = None  # the rule that refused it: auth, model, rpm, concurrency, token_budget, credit ...
    trail: Trail = field(default_factory=Trail)  # upstream attempts and times, the trace span

    def elapsed_ms(self) -> int:
        return int((time.perf_counter() - self.started) * 1000)

    def id_headers(self) -> dict[str, str]:
        """Headers every response carries: the request id twice, and X-Cache where the cache was asked."""
        headers = {"request-id": self.request_id, "x-request-id": self.request_id}
        if self.cache_status:
            headers["x-cache"] = self.cache_status
        return headers

    def usage_row(self) -> UsageRow:
        """The request as its usage row (an authenticated request only), priced once: the exact list
        cost of its usage with its flags (a cache write the gateway caused by moving a session to another
        account priced as a read), or the price set in `cost_micro` (a cache hit), to which the
        components are then scaled (docs/billing.md)."""
        assert self.key is not None
        usage, model, account = self.usage, self.model, self.account
        # Required columns first, the rest set one by one: a 34-keyword call costs four times as much.
        row = UsageRow(self.request_id, self.key.id, self.key.user_id, model.id if model else "", self.dialect.name,
                       self.status, self.stream)
        row.input_tokens, row.output_tokens = usage.input_tokens, usage.output_tokens
        row.cache_read_tokens = usage.cache_read_tokens
        row.cache_write_5m_tokens, row.cache_write_1h_tokens = usage.cache_write_5m_tokens, usage.cache_write_1h_tokens
        row.session_moved, row.latency_ms, row.ttft_ms = self.session_moved, self.elapsed_ms(), self.ttft_ms
        row.account_id = account.id if account else None
        row.upstream_request_id, row.error_type = self.upstream_request_id, self.error_type
        row.cache_hit, row.created_ms, row.session_id = self.cache_hit, self.created_ms, self.session_id
        if model is not None:
            billed = usage.writes_as_reads() if self.session_moved else usage
            breakdown = cost(model, self.flags, billed)
            price_row(row, self.flags, billed, breakdown, self.cost_micro)
            row.cost_micro = breakdown.total_micro
        if self.cost_micro is not None:
            row.cost_micro = self.cost_micro
        return row
