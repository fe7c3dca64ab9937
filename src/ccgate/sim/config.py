"""Settings of one simulator instance."""

from __future__ import annotations

from dataclasses import dataclass, field

from ccgate.sim.faults import Fault


@dataclass
class SimConfig:
    """Timing, limits and standing faults of a simulator (all zero: as fast as possible)."""

    latency_ms: float = 0
    """Delay before the response headers of every /v1 request."""
    ttft_ms: float = 0
    """Delay before the first content delta of a stream (and added to non-stream generation time)."""
    tokens_per_sec: float = 0
    """Output pacing; 0 means no pacing."""
    rpm_limit: int = 0
    """Requests per minute per upstream API key on POST /v1/messages; 0 means unlimited."""
    cache_min_tokens: int | None = None
    """Overrides every model's minimum cacheable prompt length (handy in tests)."""
    record_limit: int = 1000
    """How many /v1 requests GET /_sim/requests keeps."""
    faults: dict[str, Fault] = field(default_factory=dict)
    """Standing faults keyed by upstream API key ("*" matches every key)."""
