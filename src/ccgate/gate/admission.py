"""Admission: may this key make this request now?  Model access, credit, token budget, RPM, concurrency.

Every admitted request holds what it could at most consume: a token reservation against the
key's budget and, for a prepaid user, its worst-case cost against the balance.  Settlement
replaces both with what really happened, so neither budget nor balance is overspent by
requests running side by side.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from ccgate.billing.prices import ModelPrice, Usage, cost_micro
from ccgate.errors import GatewayError
from ccgate.gate.durations import describe_wait
from ccgate.gate.keys import KeyRecord
from ccgate.state.base import AdmissionState, Decision, Limits, Meter, Settlement

log = logging.getLogger("ccgate.gate")

# Added to every input bound: the tokens Anthropic's own tool-use system prompt can add.
INPUT_OVERHEAD_TOKENS = 1000
# Waits longer than this are past what the SDKs retry after, so they are told not to retry.
SDK_RETRY_HORIZON = 60.0
# count_tokens has a per-minute limit of its own, generous beside the key's RPM (clients count before
# they send): COUNT_TOKENS_RPM_FACTOR times the key's RPM, and never less than COUNT_TOKENS_RPM_FLOOR.
# A key without an RPM is not limited here either.
COUNT_TOKENS_RPM_FACTOR = 3
COUNT_TOKENS_RPM_FLOOR = 10
COUNT_TOKENS_SCOPE = ":count_tokens"  # its counter is the key's id with this suffix


def count_tokens_rpm(rpm: int) -> int:
    """The count_tokens requests per minute a key with this RPM may make (0: unlimited)."""
    return max(rpm * COUNT_TOKENS_RPM_FACTOR, COUNT_TOKENS_RPM_FLOOR) if rpm else 0


@dataclass(frozen=True)
class Defaults:
    """Operator-wide limits for keys that set none (0 is unlimited)."""

    rpm: int = 0
    concurrency: int = 0
    token_budget: int = 0
    window_seconds: int = 5 * 3600


def input_token_bound(body_size: int, model: ModelPrice) -> int:
    """An upper bound of a request's input tokens: a token covers at least one byte of the body,
    and no request holds more than the model's context window."""
    return min(body_size, model.max_input_tokens) + INPUT_OVERHEAD_TOKENS


def worst_case_cost(model: ModelPrice, input_bound: int, max_tokens: int) -> int:
    """Every input token at the dearest input price (a 1-hour cache write) and all of max_tokens."""
    return cost_micro(model, Usage(cache_write_1h_tokens=input_bound, output_tokens=max_tokens))


def usd(micro: int) -> str:
    return f"${micro / 1_000_000:.6f}".rstrip("0").rstrip(".")


class Ticket:
    """An admitted request's lease, reservation and hold, given back exactly once."""

    __slots__ = ("_state", "limits", "decision", "_released")

    def __init__(self, state: AdmissionState, limits: Limits, decision: Decision) -> None:
        self._state = state
        self.limits = limits
        self.decision = decision
        self._released = False

    def headers(self) -> dict[str, str]:
        return rate_limit_headers(self.decision.meters)

    def billable(self, cost: int) -> int:
        """The cost to debit: never more than the hold the request was admitted with."""
        hold = self.limits.hold_micro
        if hold is not None and cost > hold:
            log.warning("request cost %d exceeds its hold %d; debiting the hold", cost, hold)
            return hold
        return cost

    def _settlement(self, usage: Usage, cost: int) -> Settlement:
        limits = self.limits
        return Settlement(
            key_id=limits.key_id, user_id=limits.user_id, lease_id=self.decision.lease_id,
            reserve_tokens=limits.reserve_tokens, hold_micro=limits.hold_micro,
            window_seconds=limits.window_seconds if limits.token_budget else None,
            tokens_used=usage.input_tokens + usage.output_tokens + usage.cache_write_tokens, cost_micro=cost,
        )

    def on_commit(self, usage: Usage, cost: int) -> Callable[[], None]:
        """What the ledger writer does the moment this request's row is committed: apply the real use
        and release in one step, so the hold never lapses before the debit it covers is in place."""
        settlement = self._settlement(usage, cost)

        def apply() -> None:
            release, self._released = not self._released, True
            self._state.settle(settlement, release=release)

        return apply

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._state.release(self._settlement(Usage(), 0))


def rate_limit_headers(meters: list[Meter]) -> dict[str, str]:
    """X-RateLimit-* for the tightest of the key's limits (none when the key is unlimited)."""
    if not meters:
        return {}
    tightest = min(meters, key=lambda meter: meter.remaining / meter.limit)
    return {
        "x-ratelimit-limit": str(tightest.limit),
        "x-ratelimit-remaining": str(max(tightest.remaining, 0)),
        "x-ratelimit-reset": str(math.ceil(tightest.reset_at)),
    }


class Gate:
    """Applies a key's rules to each request."""

    def __init__(self, state: AdmissionState, defaults: Defaults) -> None:
        self.state = state
        self.defaults = defaults

    def limits_of(self, key: KeyRecord) -> tuple[int, int, int, int]:
        """(rpm, concurrency, token budget, window seconds) in force; 0 is unlimited."""
        defaults = self.defaults
        return (
            defaults.rpm if key.rpm is None else key.rpm,
            defaults.concurrency if key.concurrency is None else key.concurrency,
            defaults.token_budget if key.token_budget is None else key.token_budget,
            key.window_seconds or defaults.window_seconds,
        )

    async def admit(self, key: KeyRecord, model: ModelPrice, *, body_size: int, max_tokens: int) -> Ticket:
        """A ticket for this request, or the GatewayError that names the rule it breaks."""
        if key.models is not None and model.id not in key.models and not key.models.intersection(model.aliases):
            raise GatewayError(403, f"this key may not use model {model.id}")
        rpm, concurrency, budget, window = self.limits_of(key)
        input_bound = input_token_bound(body_size, model)
        limits = Limits(
            key_id=key.id, user_id=key.user_id, rpm=rpm or None, concurrency=concurrency or None,
            token_budget=budget or None, window_seconds=window,
            reserve_tokens=input_bound + max_tokens if budget else 0,
            hold_micro=worst_case_cost(model, input_bound, max_tokens) if key.prepaid else None,
        )
        decision = await self.state.admit(limits)
        if not decision.admitted:
            raise refusal(decision, limits)
        return Ticket(self.state, limits, decision)


    async def admit_count(self, key: KeyRecord) -> Ticket:
        """A ticket for a count_tokens request under its own per-minute limit (count_tokens_rpm), or a 429."""
        rpm = count_tokens_rpm(self.limits_of(key)[0])
        limits = Limits(key_id=key.id + COUNT_TOKENS_SCOPE, user_id=key.user_id, rpm=rpm or None, concurrency=None,
                        token_budget=None, window_seconds=self.defaults.window_seconds, reserve_tokens=0,
                        hold_micro=None)
        decision = await self.state.admit(limits)
        if not decision.admitted:
            raise refusal(decision, limits)
        return Ticket(self.state, limits, decision)


def refusal(decision: Decision, limits: Limits) -> GatewayError:
    """The error that names the limit hit and says when to come back."""
    detail, wait = decision.detail, decision.retry_after or 1.0
    if decision.refused_by == "credit":
        return GatewayError(402, (
            f"Insufficient credit: this request may cost up to {usd(detail['needed_micro'])} and "
            f"{usd(detail['available_micro'])} is available. Top up to continue."))
    if decision.refused_by == "token_budget":
        message = (f"Token budget exceeded. Resets in {describe_wait(wait)}. "
                   f"({detail['used']} of {detail['budget']} tokens used in the window; "
                   f"this request may use up to {detail['needed']}.)")
        limit, name = limits.token_budget, "token budget"
    elif decision.refused_by == "rpm":
        message = f"Rate limit exceeded: {limits.rpm} requests per minute for this key. Retry in {describe_wait(wait)}."
        limit, name = limits.rpm, "rpm"
    else:
        message = f"Too many concurrent requests: this key allows {limits.concurrency} at a time."
        limit, name = limits.concurrency, "concurrency"
    error = GatewayError(429, message, retry_after=wait,
                         should_retry=False if wait > SDK_RETRY_HORIZON else None)
    error.extra_headers = {
        "x-ratelimit-limit": str(limit), "x-ratelimit-remaining": "0",
        "x-ratelimit-reset": str(math.ceil(time.time() + wait)), "x-ratelimit-scope": name,
    }
    return error
