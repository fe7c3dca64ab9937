"""Admission: may this key make this request now?  Model access, credit, token budget, RPM, concurrency.

Every admitted request holds what it will likely consume (billing.estimate.UsageEstimator): a token
reservation against the key's budget and, for a prepaid user, its expected cost against the balance,
which may go below zero down to the user's overdraft.  A streaming request that runs past its hold
extends it while it streams (Ticket.extend), or is ended; settlement replaces both with what really
happened, debited exactly (docs/billing.md).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from ccgate.billing.estimate import Estimate, UsageEstimator
from ccgate.billing.prices import NO_FLAGS, ModelPrice, RequestFlags, Usage
from ccgate.errors import GatewayError
from ccgate.gate.durations import describe_wait
from ccgate.gate.keys import KeyRecord
from ccgate.state.base import AdmissionState, Decision, Limits, Meter, Settlement

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
    overdraft_micro: int = 0  # how far below zero a prepaid balance may go (CCGATE_DEFAULT_OVERDRAFT_USD)


def usd(micro: int) -> str:
    text = f"${abs(micro) / 1_000_000:.6f}".rstrip("0").rstrip(".")
    return "-" + text if micro < 0 else text


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

    async def extend(self, cost_micro: int, tokens: int) -> bool:
        """Grow the hold to at least `cost_micro` and the reservation to at least `tokens` (what the
        request has run up so far), with headroom so that a long answer asks a few times, not at every
        delta; False when the user's floor or the key's budget cannot take even the bare amount."""
        limits = self.limits
        hold_short = 0 if limits.hold_micro is None else max(cost_micro - limits.hold_micro, 0)
        tokens_short = max(tokens - limits.reserve_tokens, 0) if limits.token_budget else 0
        if not hold_short and not tokens_short:
            return True
        for hold_delta, reserve_delta in (
                (hold_short and max(hold_short, (limits.hold_micro or 0) // 2),
                 tokens_short and max(tokens_short, limits.reserve_tokens // 2)),
                (hold_short, tokens_short)):
            if await self._state.extend(self._settlement(Usage(), 0), hold_delta, reserve_delta,
                                        limits.overdraft_micro, limits.token_budget):
                if limits.hold_micro is not None:
                    limits.hold_micro += hold_delta
                limits.reserve_tokens += reserve_delta
                return True
        return False

    def _settlement(self, usage: Usage, cost: int) -> Settlement:
        limits = self.limits
        assert self.decision.lease_id is not None, "an admitted request holds a lease"
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

    def __init__(self, state: AdmissionState, defaults: Defaults, estimator: UsageEstimator | None = None) -> None:
        self.state = state
        self.defaults = defaults
        self.estimator = estimator or UsageEstimator()

    def limits_of(self, key: KeyRecord) -> tuple[int, int, int, int]:
        """(rpm, concurrency, token budget, window seconds) in force; 0 is unlimited."""
        defaults = self.defaults
        return (
            defaults.rpm if key.rpm is None else key.rpm,
            defaults.concurrency if key.concurrency is None else key.concurrency,
            defaults.token_budget if key.token_budget is None else key.token_budget,
            key.window_seconds or defaults.window_seconds,
        )

    def overdraft_of(self, key: KeyRecord) -> int:
        """How far below zero the key's user may go: their own overdraft, else the operator's default."""
        return self.defaults.overdraft_micro if key.overdraft_micro is None else key.overdraft_micro

    async def admit(self, key: KeyRecord, model: ModelPrice, *, body_size: int, max_tokens: int,
                    flags: RequestFlags = NO_FLAGS, wants_1h_cache: bool = False) -> Ticket:
        """A ticket for this request, or the GatewayError that names the rule it breaks."""
        if key.models is not None and model.id not in key.models and not key.models.intersection(model.aliases):
            raise GatewayError(403, f"this key may not use model {model.id}")
        rpm, concurrency, budget, window = self.limits_of(key)

        def expected(tokens: int) -> Estimate:
            return self.estimator.estimate(key.id, body_size, model, tokens, flags, wants_1h_cache)

        likely = expected(max_tokens)
        limits = Limits(
            key_id=key.id, user_id=key.user_id, rpm=rpm or None, concurrency=concurrency or None,
            token_budget=budget or None, window_seconds=window,
            reserve_tokens=likely.reserve_tokens if budget else 0,
            hold_micro=likely.cost_micro if key.prepaid else None,
            overdraft_micro=self.overdraft_of(key) if key.prepaid else 0,
        )
        decision = await self.state.admit(limits)
        if not decision.admitted:
            raise refusal(decision, limits, max_tokens, expected)
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


def fitting_max_tokens(fits: Callable[[int], bool], max_tokens: int) -> int | None:
    """The largest max_tokens below the request's for which `fits` holds (it only gets harder as
    max_tokens grows), or None when not even 1 fits."""
    if max_tokens <= 1 or not fits(1):
        return None
    low, high = 1, max_tokens - 1  # fits(low) holds
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits(middle) else (low, middle - 1)
    return low


def refusal(decision: Decision, limits: Limits, max_tokens: int = 0,
            expected: Callable[[int], Estimate] | None = None) -> GatewayError:
    """The error that names the limit hit, what would make the request fit, and when to come back.
    `expected(max_tokens)` re-estimates the request with a smaller max_tokens."""
    detail, wait = decision.detail, decision.retry_after or 1.0
    if decision.refused_by == "credit":
        return credit_refusal(detail, max_tokens, expected)
    if decision.refused_by == "token_budget":
        return budget_refusal(decision, limits, max_tokens, expected)
    if decision.refused_by == "rpm":
        message = f"Rate limit exceeded: {limits.rpm} requests per minute for this key. Retry in {describe_wait(wait)}."
        limit, name = limits.rpm, "rpm"
    else:
        message = f"Too many concurrent requests: this key allows {limits.concurrency} at a time."
        limit, name = limits.concurrency, "concurrency"
    return limited(message, wait, limit, name)


def limited(message: str, wait: float | None, limit: int | None, name: str) -> GatewayError:
    """A 429 with the X-RateLimit-* of the limit hit; no Retry-After when waiting cannot help."""
    error = GatewayError(429, message, retry_after=wait,
                         should_retry=False if wait is None or wait > SDK_RETRY_HORIZON else None)
    error.extra_headers = {"x-ratelimit-limit": str(limit), "x-ratelimit-remaining": "0", "x-ratelimit-scope": name}
    if wait is not None:
        error.extra_headers["x-ratelimit-reset"] = str(math.ceil(time.time() + wait))
    return error


def credit_refusal(detail: dict[str, int], max_tokens: int, expected: Callable[[int], Estimate] | None) -> GatewayError:
    """402: what the request is expected to cost, what is available, and how to make it fit."""
    needed, available = detail["needed_micro"], detail["available_micro"]
    standing = ""
    if "balance_micro" in detail:
        standing = (f" (balance {usd(detail['balance_micro'])}, overdraft {usd(detail['overdraft_micro'])}, "
                    f"held by requests in flight {usd(detail['held_micro'])})")
    advice = f"top up {usd(-(-(needed - available) // 10_000) * 10_000)}"  # to the cent above
    if expected is not None:
        tokens = fitting_max_tokens(lambda tokens: expected(tokens).cost_micro <= available, max_tokens)
        if tokens is not None:
            advice = f"lower max_tokens to {tokens}, or {advice}"
    return GatewayError(402, (
        f"Insufficient credit: this request is expected to cost {usd(needed)} and {usd(available)} is "
        f"available{standing}. To continue, {advice}."))


def budget_refusal(decision: Decision, limits: Limits, max_tokens: int,
                   expected: Callable[[int], Estimate] | None) -> GatewayError:
    """429 for the token budget: when waiting for the window helps, when; when it never can, that."""
    detail, budget = decision.detail, limits.token_budget or 0
    used, needed = detail["used"], detail["needed"]
    free = max(budget - used, 0)
    whole = fit_now = None
    if expected is not None:
        whole = fitting_max_tokens(lambda tokens: expected(tokens).reserve_tokens <= budget, max_tokens)
        fit_now = fitting_max_tokens(lambda tokens: expected(tokens).reserve_tokens <= free, max_tokens)
    if needed > budget:
        advice = f" Lower max_tokens to {whole} or send a smaller request." if whole else " Send a smaller request."
        return limited(f"This request is expected to use {needed} tokens, more than this key's whole token budget "
                       f"of {budget} per window: it can never fit, and waiting will not help.{advice}",
                       None, budget, "token budget")
    wait = decision.retry_after or 1.0
    advice = f" Lower max_tokens to {fit_now} to fit now." if fit_now else ""
    return limited(f"Token budget exceeded. Resets in {describe_wait(wait)}. ({used} of {budget} tokens used "
                   f"in the window; this request is expected to use {needed}.){advice}", wait, budget, "token budget")
