"""The one context a request carries through admission, routing, relay and billing."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

from ccgate.billing.prices import ModelPrice, Usage
from ccgate.gate.keys import KeyRecord
from ccgate.ids import request_id
from ccgate.route.pool import Account


class Dialect(Protocol):
    """How answers are spoken to the client: Anthropic bytes as they are, or OpenAI translations."""

    name: str

    def answer(self, raw: bytes, message: dict) -> bytes: ...

    def stream_chunk(self, raw: bytes, blocks: list[bytes]) -> bytes: ...

    def stream_error(self, error_type: str, message: str) -> bytes: ...

    def stream_end(self) -> bytes: ...

    def upstream_error(self, status: int, raw: bytes) -> bytes: ...


@dataclass(slots=True)
class Call:
    """A request in flight: who asked, for what, where it went, and what it used."""

    dialect: Dialect
    request_id: str = field(default_factory=request_id)
    started: float = field(default_factory=time.perf_counter)
    created_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    key: KeyRecord | None = None
    model: ModelPrice | None = None
    stream: bool = False
    max_tokens: int = 0
    body_size: int = 0
    account: Account | None = None
    usage: Usage = field(default_factory=Usage)
    status: int = 200
    ttft_ms: int | None = None
    upstream_request_id: str | None = None
    error_type: str | None = None
    cache_hit: bool = False
    session: str | None = None
    session_moved: bool = False
    cost_micro: int | None = None
    cache_key: str | None = None
    cache_status: str | None = None  # HIT, MISS or BYPASS, for the X-Cache header
    cache_lead: bool = False  # identical requests wait for this one (coalescing)

    def elapsed_ms(self) -> int:
        return int((time.perf_counter() - self.started) * 1000)

    def id_headers(self) -> dict[str, str]:
        """Headers every response carries: the request id twice, and X-Cache where the cache was asked."""
        headers = {"request-id": self.request_id, "x-request-id": self.request_id}
        if self.cache_status:
            headers["x-cache"] = self.cache_status
        return headers
