"""Shared limits in Redis, falling back to this process's own when Redis does not answer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace

from ccgate.obs import metrics
from ccgate.state.base import Decision, Limits, Settlement, Standing, StateUnavailable
from ccgate.state.memory import MemoryState
from ccgate.state.redis import RedisState

log = logging.getLogger("ccgate.state")

PROBE_INTERVAL = 1.0
# After an outage every process waits this long from the first one's return before it admits through
# Redis again: by then each live process has probed, seen Redis back and handed it its running requests.
RECOVERY_GRACE = 2 * PROBE_INTERVAL + 0.5
SHARED, LOCAL = "r:", "m:"


class ResilientState:
    """Admits through Redis while it answers.  When it does not, the process serves on its own
    per-process limits (degraded: logged, and the `ccgate_state_degraded` gauge is 1), probes Redis
    every second, and converges back once it answers: new admissions go to Redis again, leases taken
    meanwhile are returned to whichever side issued them (their ids say which), and those still
    running are first adopted by Redis, so that what they hold counts there until they end."""

    def __init__(self, shared: RedisState, local: MemoryState,
                 on_recovery: Callable[[], Awaitable[None]]) -> None:
        self.shared = shared
        self.local = local
        self._on_recovery = on_recovery
        self.degraded = False
        self._recovering = False  # set_balances overwrites Redis's balances: they missed the outage's debits
        self._probe: asyncio.Task[None] | None = None
        self._fallback: dict[str, Limits] = {}  # local lease -> what it claims, for the requests admitted
        self._adopted: dict[str, str] = {}  # while degraded; local lease -> Redis's lease once adopted
        # Redis's lease -> what it claims, for the requests admitted through Redis that still run: a Redis
        # that restarted during an outage lost them, so the recovery claims them again (under their own lease).
        self._through_redis: dict[str, Limits] = {}
        self._adopting = False  # Redis is back, the grace period runs: adopt each local admission at once
        metrics.REDIS_UP.set(1)

    def _degrade(self, error: Exception) -> None:
        if not self.degraded:
            self.degraded = True
            self.local.begin_outage()
            metrics.STATE_DEGRADED.set(1)
            metrics.REDIS_UP.set(0)
            log.error("Redis unreachable (%s): serving on per-process limits until it answers again", error)
            self._probe = asyncio.get_running_loop().create_task(self._wait_for_redis())

    async def _wait_for_redis(self) -> None:
        while True:
            await asyncio.sleep(PROBE_INTERVAL)
            try:
                await self.shared.standing("probe", 0, 60)
            except StateUnavailable:
                continue
            self._recovering = True
            try:
                await self._on_recovery()
                await self._adopt_running()
            except Exception as error:  # recovery is retried at the next probe
                log.error("Redis answers again, but balances could not be reloaded: %s", error)
                continue
            finally:
                self._recovering = False
            if not await self._wait_out_the_grace():
                continue
            self.degraded = False
            self.local.end_outage()
            metrics.STATE_DEGRADED.set(0)
            metrics.REDIS_UP.set(1)
            log.warning("Redis answers again: limits are shared across processes once more")
            return

    async def _wait_out_the_grace(self) -> bool:
        """Keep admitting on this process's share, each admission handed to Redis before it proceeds,
        until every process has seen Redis back (RECOVERY_GRACE from the first); False if Redis went
        away again meanwhile."""
        self._adopting = True
        try:
            await asyncio.sleep(await self.shared.recovery_grace(RECOVERY_GRACE))
            await self._adopt_running()
        except StateUnavailable as error:
            log.error("Redis went away again while processes were returning to it: %s", error)
            return False
        finally:
            self._adopting = False
        return True

    async def _adopt_running(self) -> None:
        """Hand Redis the requests this process admitted on its own that still run: Redis, which never
        saw them, would otherwise admit next to them on the whole balance.  Those admitted through Redis
        before the outage are claimed again under their own leases (a no-op where Redis kept them, and
        their holds back where a restart lost them)."""
        for lease, claim in list(self._fallback.items()):
            if lease not in self._adopted:
                self._adopted[lease] = await self.shared.adopt(claim)
        for lease, claim in list(self._through_redis.items()):
            if lease in self._through_redis:  # not ended meanwhile
                await self.shared.adopt(claim, lease_id=lease)

    async def admit(self, limits: Limits) -> Decision:
        if not self.degraded:
            try:
                decision = await self.shared.admit(limits)
            except StateUnavailable as error:
                self._degrade(error)
            else:
                if decision.admitted and decision.lease_id is not None:
                    self._through_redis[decision.lease_id] = limits
                if decision.admitted and limits.hold_micro is not None:  # the fallback counts what runs through
                    self.local.hold_elsewhere(limits.user_id, limits.hold_micro)  # Redis, here and elsewhere
                if decision.balance_micro is not None:  # and starts from the last known balance
                    self.local.learn_balance(limits.user_id, decision.balance_micro, decision.held_micro)
                return _tagged(decision, SHARED)
        decision = await self.local.admit(limits)
        if decision.admitted and decision.lease_id is not None:
            if self._adopting:  # a process already back on Redis must see this hold before it runs
                with contextlib.suppress(StateUnavailable):  # gone again: the grace period says so
                    self._adopted[decision.lease_id] = await self.shared.adopt(limits)
            self._fallback[decision.lease_id] = limits  # after: the probe's own adoptions never see it twice
        return _tagged(decision, LOCAL)

    def settle(self, settlement: Settlement, *, release: bool = True) -> None:
        """Settle on the side that admitted; a debit through Redis is taken off this process's fallback
        figure as well, so a fallback balance includes every settlement this process made."""
        side, lease = self._side(settlement)
        side.settle(lease, release=release)
        if side is self.shared and release:
            self._through_redis.pop(lease.lease_id, None)
        if side is self.shared and settlement.hold_micro is not None:
            self.local.debit(settlement.user_id, settlement.cost_micro)
            if release:
                self.local.hold_elsewhere(settlement.user_id, -settlement.hold_micro)
        elif side is self.local and (adopted := self._adopted_lease(lease, release)) is not None:
            self.shared.settle(replace(lease, lease_id=adopted), release=release)  # Redis's balance too

    async def extend(self, settlement: Settlement, hold_micro: int, reserve_tokens: int,
                     overdraft_micro: int, token_budget: int | None) -> bool:
        """Extend on the side that admitted, or on Redis once it adopted the request; Redis unreachable
        refuses (the request ends at its hold)."""
        side, lease = self._side(settlement)
        adopted = self._adopted.get(lease.lease_id) if side is self.local else None
        try:
            if adopted is not None:  # Redis keeps this request's figures now
                return await self.shared.extend(replace(lease, lease_id=adopted), hold_micro, reserve_tokens,
                                                overdraft_micro, token_budget)
            extended = await side.extend(lease, hold_micro, reserve_tokens, overdraft_micro, token_budget)
        except StateUnavailable as error:
            self._degrade(error)
            return False
        if extended and side is self.shared and settlement.hold_micro is not None:
            self.local.hold_elsewhere(settlement.user_id, hold_micro)
        elif extended and (claim := self._fallback.get(lease.lease_id)) is not None:  # adopted as it is now
            self._fallback[lease.lease_id] = replace(
                claim, reserve_tokens=claim.reserve_tokens + reserve_tokens,
                hold_micro=None if claim.hold_micro is None else claim.hold_micro + hold_micro)
        return extended

    def release(self, settlement: Settlement) -> None:
        side, lease = self._side(settlement)
        side.release(lease)
        if side is self.shared:
            self._through_redis.pop(lease.lease_id, None)
        if side is self.shared and settlement.hold_micro is not None:
            self.local.hold_elsewhere(settlement.user_id, -settlement.hold_micro)
        elif side is self.local and (adopted := self._adopted_lease(lease, True)) is not None:
            self.shared.release(replace(lease, lease_id=adopted))

    def _adopted_lease(self, lease: Settlement, ending: bool) -> str | None:
        """Redis's lease for a request this process admitted on its own, if Redis adopted it; a request
        that ends is forgotten."""
        if ending:
            self._fallback.pop(lease.lease_id, None)
            return self._adopted.pop(lease.lease_id, None)
        return self._adopted.get(lease.lease_id)

    def _side(self, settlement: Settlement) -> tuple[RedisState | MemoryState, Settlement]:
        lease_id = settlement.lease_id or ""
        side = self.shared if lease_id.startswith(SHARED) else self.local
        return side, replace(settlement, lease_id=lease_id[len(SHARED):])

    async def caught_up(self) -> None:
        await self.shared.caught_up()  # a failed run counts as done: this never waits on a dead Redis

    async def standing(self, key_id: str, user_id: int, window_seconds: int) -> Standing:
        if not self.degraded:
            try:
                return await self.shared.standing(key_id, user_id, window_seconds)
            except StateUnavailable as error:
                self._degrade(error)
        return await self.local.standing(key_id, user_id, window_seconds)

    async def set_balances(self, balances: Mapping[int, int | None], credited_through: int = 0) -> None:
        """The database's balances: this process's fallback takes them all; Redis only those it lacks."""
        await self.local.set_balances(balances)
        if not self.degraded or self._recovering:
            try:
                await self.shared.set_balances(balances, credited_through, overwrite=self._recovering)
            except StateUnavailable as error:
                self._degrade(error)

    async def apply_credits(self, entries: list[tuple[int, int, int]]) -> None:
        """Credits reach Redis once across all processes; while degraded, the fallback's figures from the
        outage's start take them too (each process spends its share of them)."""
        if self.degraded:
            await self.local.apply_credits(entries)
        if not self.degraded or self._recovering:
            try:
                await self.shared.apply_credits(entries)
            except StateUnavailable as error:
                self._degrade(error)

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
        await self.shared.stop()


def _tagged(decision: Decision, side: str) -> Decision:
    if decision.lease_id is not None:
        decision.lease_id = side + decision.lease_id
    return decision

