"""The shared-state interface admission uses, whatever holds the counters (memory or Redis)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

MINUTE = 60


class StateUnavailable(Exception):
    """The shared state (Redis) cannot be reached; the caller may fall back to per-process limits."""


@dataclass(slots=True)
class Limits:
    """A key's limits in force (None is unlimited) and what this request claims against them."""

    key_id: str
    user_id: int
    rpm: int | None
    concurrency: int | None
    token_budget: int | None
    window_seconds: int
    reserve_tokens: int
    hold_micro: int | None  # None: the user is postpaid
    overdraft_micro: int = 0  # how far below zero this user's balance may go (prepaid only)


@dataclass(slots=True)
class Meter:
    """One limit's standing, for X-RateLimit-* headers and key-status."""

    name: str
    limit: int
    remaining: int
    reset_at: float  # epoch seconds when capacity next comes back


@dataclass(slots=True)
class Decision:
    """Admitted with a lease, or refused naming the limit and when to come back."""

    admitted: bool
    lease_id: str | None = None
    refused_by: str | None = None
    retry_after: float | None = None
    meters: list[Meter] = field(default_factory=list)
    detail: dict[str, int] = field(default_factory=dict)  # the refusing limit's figures, for the message
    balance_micro: int | None = None  # the shared balance when admitted (Redis), for the fallback's figure
    held_micro: int = 0  # what the user's requests on every process held through Redis then, this one included


@dataclass(slots=True)
class Settlement:
    """What an admitted request really used, returned with its lease."""

    key_id: str
    user_id: int
    lease_id: str
    reserve_tokens: int
    hold_micro: int | None
    window_seconds: int | None
    tokens_used: int
    cost_micro: int


@dataclass(slots=True)
class Standing:
    """A key's and its user's current state, for GET /v1/key-status."""

    tokens_used: int
    tokens_reset_in: float | None
    requests_last_minute: int
    in_flight: int
    balance_micro: int | None
    held_micro: int


class AdmissionState(Protocol):
    async def admit(self, limits: Limits) -> Decision: ...

    def settle(self, settlement: Settlement, *, release: bool = True) -> None:
        """Apply a committed request's real use, then give its lease back unless it already was
        (never blocks).  Called by the ledger writer right after the request's usage row is committed."""

    def release(self, settlement: Settlement) -> None:
        """Give the lease, token reservation and credit hold back (never blocks)."""

    async def extend(self, settlement: Settlement, hold_micro: int, reserve_tokens: int,
                     overdraft_micro: int, token_budget: int | None) -> bool:
        """Grow a running request's hold and token reservation by these amounts, atomically, if the
        user's balance stays above its floor (-overdraft) and the key's budget holds them; False if not
        (nothing changed).  `settlement` names the lease (and carries what it holds so far)."""

    async def caught_up(self) -> None:
        """Return once the settlements and releases scheduled so far are applied, so the client's next
        request finds its lease back."""

    async def standing(self, key_id: str, user_id: int, window_seconds: int) -> Standing: ...

    async def set_balances(self, balances: Mapping[int, int | None], credited_through: int = 0) -> None:
        """The database's prepaid balances, which include every credit ledger entry up to the id given."""

    async def apply_credits(self, entries: list[tuple[int, int, int]]) -> None:
        """(ledger entry id, user id, amount) credits made since, each applied exactly once."""
