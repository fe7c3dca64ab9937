"""Admission state held in this process: exact on one process, and the fallback when Redis is away."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from ccgate.state.base import MINUTE, Decision, Limits, Meter, Settlement, Standing

BUCKET = 60  # token-budget buckets are one minute wide


class TokenWindow:
    """Tokens used per minute bucket; the budget is whatever the buckets inside the window sum to."""

    __slots__ = ("buckets",)

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}

    def prune(self, now: float, window: int) -> None:
        oldest = int((now - window) // BUCKET)
        for bucket in [b for b in self.buckets if b <= oldest]:
            del self.buckets[bucket]

    def used(self) -> int:
        return sum(self.buckets.values())

    def add(self, now: float, tokens: int) -> None:
        bucket = int(now // BUCKET)
        self.buckets[bucket] = self.buckets.get(bucket, 0) + tokens

    def seconds_until_free(self, now: float, window: int, excess: int) -> float:
        """How long until buckets holding at least `excess` tokens have left the window."""
        freed = 0
        for bucket in sorted(self.buckets):
            freed += self.buckets[bucket]
            if freed >= excess:
                return max((bucket + 1) * BUCKET + window - now, 1.0)
        return float(window)


class RecentRequests:
    """Requests counted per second over the last minute: sixty small counters, whatever the rate."""

    __slots__ = ("counts", "seconds")

    def __init__(self) -> None:
        self.seconds = [0] * MINUTE
        self.counts = [0] * MINUTE

    def add(self, now: float) -> None:
        second = int(now)
        slot = second % MINUTE
        if self.seconds[slot] != second:
            self.seconds[slot], self.counts[slot] = second, 0
        self.counts[slot] += 1

    def last_minute(self, now: float) -> int:
        oldest = int(now) - MINUTE
        return sum(count for second, count in zip(self.seconds, self.counts, strict=True) if second > oldest)


def credit_detail(needed: int, balance: int, held: int, overdraft: int, available: int | None = None) -> dict[str, int]:
    """What a credit refusal tells the client: what the request needs and what the user has (`available`:
    balance + overdraft - held unless given)."""
    available = balance + overdraft - held if available is None else available
    return {"needed_micro": needed, "available_micro": max(available, 0),
            "balance_micro": balance, "held_micro": held, "overdraft_micro": overdraft}


@dataclass
class Outage:
    """While Redis is away: each balance as this process knew it then (plus credits since), and what
    this process has spent since; its share of that first figure bounds its share of each later one."""

    first: dict[int, int]
    spent: dict[int, int] = field(default_factory=lambda: defaultdict(int))


class MemoryState:
    """Sliding request logs, leases, token windows, balances and holds, as plain dictionaries.

    `share`: how many processes admit on figures like these at once (the serving workers, when this is
    their fallback with Redis away).  Each may then spend only its share of what a user had when its
    figure was last set (balance + overdraft, over `share`), less what it has spent since, so that
    together they stay above the floor; 1 (a single process) is the whole balance."""

    def __init__(self, share: int = 1) -> None:
        self.share = max(share, 1)
        self._requests: dict[str, deque[float]] = defaultdict(deque)  # the RPM log of keys with a limit
        self._recent: dict[str, RecentRequests] = defaultdict(RecentRequests)  # every key, for key-status
        self._leases: dict[str, dict[str, float]] = defaultdict(dict)
        self._tokens: dict[str, TokenWindow] = defaultdict(TokenWindow)
        self._reserved: dict[str, int] = defaultdict(int)
        self._balances: dict[int, int] = {}
        self._known: dict[int, int] = {}  # each balance as last set from outside (the snapshot shares split)
        self._elsewhere: dict[int, int] = {}  # what other processes held through Redis, as last known
        self._held: dict[int, int] = defaultdict(int)
        self._outage: Outage | None = None  # while Redis is away (this is the fallback of several processes)
        self._next_lease = 0

    # -- admission -------------------------------------------------------------------------------

    async def admit(self, limits: Limits) -> Decision:
        now = time.time()
        key = limits.key_id
        meters: list[Meter] = []

        if limits.hold_micro is not None:
            balance, held = self._balances.get(limits.user_id, 0), self._held[limits.user_id]
            headroom = self._headroom(limits.user_id, limits.overdraft_micro)
            if limits.hold_micro > headroom:
                return Decision(False, refused_by="credit", detail=credit_detail(
                    limits.hold_micro, balance, held, limits.overdraft_micro, headroom))

        if limits.token_budget:
            window = self._tokens[key]
            window.prune(now, limits.window_seconds)
            used = window.used() + self._reserved[key]
            if used + limits.reserve_tokens > limits.token_budget:
                excess = used + limits.reserve_tokens - limits.token_budget
                wait = window.seconds_until_free(now, limits.window_seconds, excess)
                return Decision(False, refused_by="token_budget", retry_after=wait, detail={
                    "used": used, "needed": limits.reserve_tokens, "budget": limits.token_budget})
            oldest = min(window.buckets, default=int(now // BUCKET))
            meters.append(Meter("tokens", limits.token_budget, limits.token_budget - used - limits.reserve_tokens,
                                (oldest + 1) * BUCKET + limits.window_seconds))

        if limits.rpm:
            log = self._requests[key]
            while log and log[0] <= now - MINUTE:
                log.popleft()
            if len(log) >= limits.rpm:
                wait = log[0] + MINUTE - now
                return Decision(False, refused_by="rpm", retry_after=wait, detail={"rpm": limits.rpm})
            meters.append(Meter("requests", limits.rpm, limits.rpm - len(log) - 1,
                                (log[0] if log else now) + MINUTE))

        leases = self._leases[key]
        if limits.concurrency:
            if len(leases) >= limits.concurrency:
                return Decision(False, refused_by="concurrency", retry_after=1.0,
                                detail={"concurrency": limits.concurrency})
            meters.append(Meter("concurrency", limits.concurrency, limits.concurrency - len(leases) - 1, now + 1))

        self._next_lease += 1
        lease_id = str(self._next_lease)
        leases[lease_id] = now
        if limits.rpm:
            self._requests[key].append(now)
        self._recent[key].add(now)
        self._reserved[key] += limits.reserve_tokens
        if limits.hold_micro is not None:
            self._held[limits.user_id] += limits.hold_micro
        return Decision(True, lease_id=lease_id, meters=meters)

    def settle(self, settlement: Settlement, *, release: bool = True) -> None:
        """Apply a committed request's real use (its tokens to the window, its cost to the balance),
        then give its lease back."""
        if settlement.window_seconds:
            self._tokens[settlement.key_id].add(time.time(), settlement.tokens_used)
        if settlement.hold_micro is not None:
            self.debit(settlement.user_id, settlement.cost_micro)
        if release:
            self.release(settlement)

    def release(self, settlement: Settlement) -> None:
        """Give the lease, the token reservation and the credit hold back."""
        self._leases[settlement.key_id].pop(settlement.lease_id, None)
        self._reserved[settlement.key_id] -= settlement.reserve_tokens
        if settlement.hold_micro is not None:
            self._held[settlement.user_id] -= settlement.hold_micro

    async def extend(self, settlement: Settlement, hold_micro: int, reserve_tokens: int,
                     overdraft_micro: int, token_budget: int | None) -> bool:
        """Grow a running request's hold and reservation if the floor and the budget allow it."""
        user, key = settlement.user_id, settlement.key_id
        if settlement.lease_id not in self._leases[key]:
            return False
        if hold_micro and settlement.hold_micro is not None:
            if self._headroom(user, overdraft_micro) < hold_micro:
                return False
        if reserve_tokens and token_budget and settlement.window_seconds:
            window = self._tokens[key]
            window.prune(time.time(), settlement.window_seconds)
            if window.used() + self._reserved[key] + reserve_tokens > token_budget:
                return False
        if settlement.hold_micro is not None:
            self._held[user] += hold_micro
        self._reserved[key] += reserve_tokens
        return True

    def _headroom(self, user_id: int, overdraft_micro: int) -> int:
        """What the user may still hold here: balance + overdraft - held, or with several processes this
        one's share of it as last known, less what this process spent since (and, during an outage, no
        more than its share of the figure it had when the outage began, less what it spent since)."""
        balance, held = self._balances.get(user_id, 0), self._held[user_id]
        elsewhere = self._elsewhere.get(user_id, 0)
        if self.share == 1:
            return balance + overdraft_micro - held - elsewhere
        known = self._known.get(user_id, balance)
        headroom = (known + overdraft_micro - elsewhere) // self.share - (known - balance) - held
        outage = self._outage
        if outage is not None and user_id in outage.first:
            first, spent = outage.first[user_id], outage.spent[user_id]
            headroom = min(headroom, (first + overdraft_micro - elsewhere) // self.share - spent - held)
        return headroom

    def begin_outage(self) -> None:
        """Redis went away: from now on each process spends its share of the figures it has now."""
        self._outage = Outage(dict(self._balances))

    def end_outage(self) -> None:
        self._outage = None

    def debit(self, user_id: int, cost_micro: int) -> None:
        """Take a cost settled elsewhere (through Redis) off this process's figure of the balance."""
        if user_id in self._balances:
            self._balances[user_id] -= cost_micro
            if self._outage is not None:
                self._outage.spent[user_id] += cost_micro

    def hold_elsewhere(self, user_id: int, hold_micro: int) -> None:
        """Count (or, negative, give back) a hold this process took through Redis: should Redis go away,
        the fallback admits next to those requests, which still run and will be debited here."""
        self._held[user_id] += hold_micro

    def learn_balance(self, user_id: int, balance_micro: int, held_micro: int = 0) -> None:
        """The shared balance as Redis last reported it: this process's figure from now on; `held_micro`,
        what every process held through Redis then, of which the others' part is kept (as last known: it
        errs on the safe side once those requests settle) for when Redis stops answering."""
        self._balances[user_id] = self._known[user_id] = balance_micro
        self._elsewhere[user_id] = max(held_micro - self._held[user_id], 0)

    async def caught_up(self) -> None:
        """Nothing is ever pending here."""

    # -- reporting and configuration -------------------------------------------------------------

    async def standing(self, key_id: str, user_id: int, window_seconds: int) -> Standing:
        now = time.time()
        window = self._tokens[key_id]
        window.prune(now, window_seconds)
        oldest = min(window.buckets, default=None)
        return Standing(
            tokens_used=window.used(),
            tokens_reset_in=(oldest + 1) * BUCKET + window_seconds - now if oldest is not None else None,
            requests_last_minute=self._recent[key_id].last_minute(now), in_flight=len(self._leases[key_id]),
            balance_micro=self._balances.get(user_id), held_micro=self._held[user_id],
        )

    async def set_balances(self, balances: Mapping[int, int | None], credited_through: int = 0) -> None:
        """The prepaid balances as the database has them (postpaid users carry None); being read
        between this process's own commits, they already include every credit entry."""
        self._balances = {user: balance for user, balance in balances.items() if balance is not None}
        self._known = dict(self._balances)

    async def apply_credits(self, entries: list[tuple[int, int, int]]) -> None:
        """(entry id, user id, amount) credit entries: set_balances brought them into the balances
        already; during an outage they go onto its first figures too."""
        if self._outage is not None:
            for _, user, amount in entries:
                if user in self._outage.first:
                    self._outage.first[user] += amount
