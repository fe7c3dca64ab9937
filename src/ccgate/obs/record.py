"""The one small record a finished request leaves for metrics, the access log and traces."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


class UpstreamAttempt(NamedTuple):
    """One try at an upstream account; `cause` is None when it answered (any non-retried status)."""

    account: str
    cause: str | None = None  # rate_limited, overloaded, unauthorized, forbidden, server_error, unreachable


@dataclass(slots=True)
class RequestRecord:
    """What happened to one request: ids, where it went, what it used and how long it took.

    Carries ids, counts, costs and times only: never a key, a credential, a prompt or a completion.
    """

    request_id: str
    route: str  # "messages", "chat_completions", "count_tokens" ...
    dialect: str  # "anthropic" or "openai"
    status: int
    model: str = ""
    key_id: str | None = None
    user_id: int | None = None
    session_id: str | None = None  # x-claude-code-session-id
    account: str | None = None  # the account that answered
    stream: bool = False
    error_type: str | None = None
    refusal: str | None = None  # admission refused it: auth, model, rpm, concurrency, budget, credit, database
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    cost_micro: int = 0
    cache: str | None = None  # HIT, MISS, BYPASS or None when the response cache was not asked
    total_seconds: float = 0.0  # from the request's arrival to its last byte
    upstream_seconds: float = 0.0  # time spent waiting on the upstream (0 for hits and refusals)
    upstream_ttfb_seconds: float | None = None  # from sending upstream to its first byte
    attempts: tuple[UpstreamAttempt, ...] = field(default_factory=tuple)

    @property
    def added_seconds(self) -> float:
        """The time the gateway itself added: total minus time waiting on upstream."""
        return max(self.total_seconds - self.upstream_seconds, 0.0)

    @property
    def status_class(self) -> str:
        return f"{self.status // 100}xx"
