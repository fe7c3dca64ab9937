"""Fault injection: what can go wrong, how a request asks for it, and the per-key fault book.

Kinds: "400", "401", "403", "429", "500", "529" (an error response), "reset" (the TCP
connection is aborted before any response), "slow-first-byte" (`delay_ms` before the
headers), "midstream-error" (after `after_events` SSE events an `event: error` overloaded_error,
then the stream ends with no message_stop) and "midstream-reset" (the connection is aborted
after `after_events` events).  The two midstream kinds only apply to streaming requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from ccgate.sim.errors import ApiError, invalid

ERROR_FAULTS: dict[str, tuple[int, str]] = {
    "400": (400, "Simulated fault: this request was rejected as invalid."),
    "401": (401, "invalid x-api-key"),
    "403": (403, "This organization has been disabled."),
    "429": (429, "Number of request tokens has exceeded your per-minute rate limit "
                 "(https://docs.claude.com/en/api/rate-limits); see the response headers for current usage. "
                 "Please reduce the prompt length or the maximum tokens requested, or try again later."),
    "500": (500, "Internal server error"),
    "529": (529, "Overloaded"),
}
MIDSTREAM_KINDS = frozenset({"midstream-error", "midstream-reset"})
FAULT_KINDS = frozenset(ERROR_FAULTS) | MIDSTREAM_KINDS | {"reset", "slow-first-byte"}
DEFAULT_RETRY_AFTER = 1.0


@dataclass
class Fault:
    """One injected failure; `count` is how many requests it applies to (None: every one)."""

    kind: str
    count: int | None = None
    retry_after: float | None = None
    after_events: int = 4
    delay_ms: float = 1000

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {', '.join(sorted(FAULT_KINDS))}")
        if self.count is not None and self.count < 1:
            raise ValueError("count must be a positive integer or null")
        if self.after_events < 0 or self.delay_ms < 0 or (self.retry_after is not None and self.retry_after < 0):
            raise ValueError("after_events, delay_ms and retry_after must not be negative")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Fault:
        """Build from JSON such as POST /_sim/faults sends; raises ValueError or TypeError."""
        return cls(
            kind=str(data["kind"]),
            count=None if data.get("count") is None else int(data["count"]),
            retry_after=None if data.get("retry_after") is None else float(data["retry_after"]),
            after_events=int(data.get("after_events", 4)),
            delay_ms=float(data.get("delay_ms", 1000)),
        )

    def applies_to(self, streaming: bool) -> bool:
        """Whether this fault can hit a request of this kind (midstream faults need a stream)."""
        return streaming or self.kind not in MIDSTREAM_KINDS

    def as_json(self) -> dict[str, Any]:
        """Plain dict for GET /_sim/faults."""
        return asdict(self)

    def error(self) -> ApiError | None:
        """The error response this fault answers with, if it is an error-status kind."""
        if self.kind not in ERROR_FAULTS:
            return None
        status, message = ERROR_FAULTS[self.kind]
        headers: dict[str, str] = {}
        if status in (429, 500, 529):
            headers["x-should-retry"] = "true"
        retry_after = self.retry_after if self.retry_after is not None or status != 429 else DEFAULT_RETRY_AFTER
        if retry_after is not None:
            headers["retry-after"] = f"{retry_after:g}"
        return ApiError(status, message, headers)


def fault_from_headers(headers: Mapping[str, str]) -> Fault | None:
    """`x-sim-fault: KIND` with optional `x-sim-fault-after`, `x-sim-retry-after`, `x-sim-delay-ms`."""
    kind = headers.get("x-sim-fault")
    if kind is None:
        return None
    fields = {"kind": kind.strip(), "after_events": headers.get("x-sim-fault-after", 4),
              "retry_after": headers.get("x-sim-retry-after"), "delay_ms": headers.get("x-sim-delay-ms", 1000)}
    try:
        return Fault.from_mapping(fields)
    except (TypeError, ValueError) as exc:
        raise invalid(f"x-sim-fault: {exc}") from None


class FaultBook:
    """Standing faults per upstream API key ("*" for any key), each used up after `count` requests."""

    def __init__(self, initial: Mapping[str, Fault]) -> None:
        self._faults: dict[str, Fault] = {key: replace(fault) for key, fault in initial.items()}

    def set(self, api_key: str, fault: Fault) -> None:
        """Install (or replace) the fault for a key."""
        self._faults[api_key] = fault

    def clear(self) -> None:
        """Remove every standing fault."""
        self._faults.clear()

    def as_json(self) -> dict[str, dict[str, Any]]:
        """The standing faults with their remaining counts."""
        return {key: fault.as_json() for key, fault in self._faults.items()}

    def take(self, api_key: str, streaming: bool) -> Fault | None:
        """The fault this request gets, if any, counting it against the fault's `count`."""
        if not self._faults:
            return None
        for key in (api_key, "*"):
            fault = self._faults.get(key)
            if fault is None or not fault.applies_to(streaming):
                continue
            if fault.count is not None:
                fault.count -= 1
                if fault.count == 0:
                    del self._faults[key]
            return fault
        return None
