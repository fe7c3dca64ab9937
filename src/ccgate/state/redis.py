"""Admission state in Redis: the same limits as MemoryState, exact across every process on every host.

Each admission is one Lua script run (sent in one pipeline with the other runs queued at that
moment, so at most one round trip): it checks credit, token budget, RPM and
concurrency in that order and, when all pass, applies them at once, on the Redis server's clock so
that hosts with skewed clocks agree.  A lease, and the token reservation and credit hold it carries,
is a claim with an expiry that the holding process renews; a process killed with -9 stops renewing
and everything it held comes back after `lease_ttl` seconds.

Keys (K a key id, U a user id, every name after `prefix`):

    balance:U   string  prepaid balance in micro-dollars; no expiry, Redis is its live authority
    credited:U  string  the newest credit ledger entry the balance includes
    holds:U     zset    lease id -> expiry (ms) of the user's leases that hold credit
    held:U      hash    lease id -> micro-dollars it holds
    tokens:K    hash    minute -> tokens used; expires when its last write leaves the window
    leases:K    zset    lease id -> expiry (ms) of the key's requests in flight
    reserved:K  hash    lease id -> tokens it reserves against the budget
    requests:K  zset    lease id -> admission time (ms), the RPM log of a key with a limit; expires a
                        minute after the last
    recent:K    hash    second % 60 -> "second:count", every admitted request, for key-status; expires
                        a minute after the last

A lease id is `U.<random>`, so a renewal finds the user's hold from the lease alone.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Mapping
from typing import Any, NamedTuple

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from ccgate.state.base import (
    Decision,
    Limits,
    Meter,
    Settlement,
    Standing,
    StateUnavailable,
)
from ccgate.state.batches import ScriptBatches, cancel, reachable

log = logging.getLogger("ccgate.state.redis")

# Helpers every script starts with.  A claim set is a sorted set of lease ids scored by expiry plus
# a hash of what each lease holds; the hash only lists leases holding more than nothing.
LIBRARY = """
-- The Redis server's clock in milliseconds.
local function now_ms()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

-- Let a key live at least `ms` more milliseconds, never shortening what another writer set.
local function keep(key, ms)
  if redis.call('PTTL', key) < ms then
    redis.call('PEXPIRE', key, ms)
  end
end

-- Forget the claims whose expiry has passed, with what they held.
local function prune(claims, amounts, now)
  for _, lease in ipairs(redis.call('ZRANGE', claims, '-inf', now, 'BYSCORE')) do
    redis.call('HDEL', amounts, lease)
  end
  redis.call('ZREMRANGEBYSCORE', claims, '-inf', now)
end

-- Claim `amount` for a lease in a claim set, until now + ttl.
local function claim(claims, amounts, lease, amount, now, ttl)
  redis.call('ZADD', claims, now + ttl, lease)
  if amount > 0 then
    redis.call('HSET', amounts, lease, amount)
  end
  keep(claims, ttl)
  keep(amounts, ttl)
end

-- What the claims of a hash hold together.
local function total(amounts)
  local sum = 0
  for _, amount in ipairs(redis.call('HVALS', amounts)) do
    sum = sum + tonumber(amount)
  end
  return sum
end

-- The token window's one-minute buckets {minute, tokens}, oldest first, after deleting those the
-- window has left.
local function buckets(tokens, now, window)
  local oldest = math.floor((now / 1000 - window) / 60)
  local live = {}
  local flat = redis.call('HGETALL', tokens)
  for i = 1, #flat, 2 do
    local minute = tonumber(flat[i])
    if minute <= oldest then
      redis.call('HDEL', tokens, flat[i])
    else
      table.insert(live, {minute, tonumber(flat[i + 1])})
    end
  end
  table.sort(live, function(a, b) return a[1] < b[1] end)
  return live
end

local function tokens_in(live)
  local sum = 0
  for _, bucket in ipairs(live) do
    sum = sum + bucket[2]
  end
  return sum
end
"""

# The scripts about one request take the same keys: its user's, then its key's.
REQUEST_KEYS = """
local balance, holds, held, tokens, leases, reserved, requests, recent = unpack(KEYS)
"""

ADMIT = """
-- Admit a request: credit, token budget, RPM, concurrency, in that order; apply all or nothing.
-- ARGV: lease id, hold ('' when postpaid), token budget, window seconds, tokens to reserve,
--       rpm, concurrency (0 is unlimited), lease ttl ms, overdraft.
-- Returns {1, meters, balance or nil} or {0, limit, retry after ms or nil, detail as a flat key/value list}.
-- The balance may go below zero down to -overdraft: a hold must fit in balance + overdraft - held.
local lease, hold = ARGV[1], tonumber(ARGV[2])
local budget, window, reserve = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local rpm, concurrency, ttl = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local overdraft = tonumber(ARGV[9]) or 0
local now = now_ms()
local meters = {}

-- How long until buckets holding at least `excess` tokens have left the window.
local function until_free(live, excess)
  local freed = 0
  for _, bucket in ipairs(live) do
    freed = freed + bucket[2]
    if freed >= excess then
      return math.max((bucket[1] + 1) * 60000 + window * 1000 - now, 1000)
    end
  end
  return window * 1000
end

local holding = 0
if hold then
  prune(holds, held, now)
  local funds = tonumber(redis.call('GET', balance)) or 0
  holding = total(held)
  local available = funds + overdraft - holding
  if hold > available then
    return {0, 'credit', false, {'needed_micro', hold, 'available_micro', math.max(available, 0),
                                 'balance_micro', funds, 'held_micro', holding, 'overdraft_micro', overdraft}}
  end
end

prune(leases, reserved, now)
if budget > 0 then
  local live = buckets(tokens, now, window)
  local used = tokens_in(live) + total(reserved)
  if used + reserve > budget then
    return {0, 'token_budget', until_free(live, used + reserve - budget),
            {'used', used, 'needed', reserve, 'budget', budget}}
  end
  local oldest = live[1] and live[1][1] or math.floor(now / 60000)
  table.insert(meters, {'tokens', budget, budget - used - reserve, (oldest + 1) * 60000 + window * 1000})
end

if rpm > 0 then
  redis.call('ZREMRANGEBYSCORE', requests, '-inf', now - 60000)
  local count = redis.call('ZCARD', requests)
  local first = tonumber(redis.call('ZRANGE', requests, 0, 0, 'WITHSCORES')[2]) or now
  if count >= rpm then
    return {0, 'rpm', first + 60000 - now, {'rpm', rpm}}
  end
  table.insert(meters, {'requests', rpm, rpm - count - 1, first + 60000})
end

local in_flight = redis.call('ZCARD', leases)
if concurrency > 0 then
  if in_flight >= concurrency then
    return {0, 'concurrency', 1000, {'concurrency', concurrency}}
  end
  table.insert(meters, {'concurrency', concurrency, concurrency - in_flight - 1, now + 1000})
end

claim(leases, reserved, lease, reserve, now, ttl)
if hold then
  claim(holds, held, lease, hold, now, ttl)
end
if rpm > 0 then
  redis.call('ZADD', requests, now, lease)
  keep(requests, 60000)
end
-- Count it for key-status, whether or not the key has an RPM limit: one small counter a second.
local second = math.floor(now / 1000)
local slot = second % 60
local stamp, count = string.match(redis.call('HGET', recent, slot) or '', '(%d+):(%d+)')
count = tonumber(stamp) == second and tonumber(count) + 1 or 1
redis.call('HSET', recent, slot, second .. ':' .. count)
keep(recent, 60000)
return {1, meters, redis.call('GET', balance), holding + (hold or 0)}
"""

# Giving a lease back: the key's slot and reservation, the user's hold.  A lease that expired
# meanwhile was already pruned with what it held, so nothing is freed twice.
GIVE_BACK = """
local function give_back(lease)
  for _, claims in ipairs({{leases, reserved}, {holds, held}}) do
    redis.call('ZREM', claims[1], lease)
    redis.call('HDEL', claims[2], lease)
  end
end
"""

SETTLE = """
-- Apply a committed request's real use, then give its lease back.  ARGV: cost ('' when postpaid),
-- tokens used, window seconds ('' when the key has no budget), lease id ('' when already given back).
local cost, used, window, lease = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), ARGV[4]
local live = tonumber(redis.call('GET', balance))
if cost and live then
  -- Only a balance Redis already holds; exactly, as the database debits it (admission keeps the floor).
  redis.call('SET', balance, live - cost)
end
if window then
  redis.call('HINCRBY', tokens, math.floor(now_ms() / 60000), used)
  keep(tokens, (window + 60) * 1000)
end
if lease ~= '' then
  give_back(lease)
end
"""

EXTEND = """
-- Grow a live lease's credit hold and token reservation, all or nothing.
-- ARGV: lease id, hold delta ('' when postpaid), reserve delta, overdraft, token budget (0: none), window s.
-- Returns 1 when extended, 0 when the floor or the budget refuses it (or the lease is gone).
local lease, grow, reserve = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local overdraft, budget, window = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local now = now_ms()
local expiry = tonumber(redis.call('ZSCORE', leases, lease))
if not expiry or expiry <= now then
  return 0
end
if grow and grow > 0 then
  prune(holds, held, now)
  if (tonumber(redis.call('GET', balance)) or 0) + overdraft - total(held) < grow then
    return 0
  end
end
if reserve > 0 and budget > 0 then
  prune(leases, reserved, now)
  if tokens_in(buckets(tokens, now, window)) + total(reserved) + reserve > budget then
    return 0
  end
end
if grow and grow > 0 then
  redis.call('HINCRBY', held, lease, grow)
end
if reserve > 0 then
  redis.call('HINCRBY', reserved, lease, reserve)
end
return 1
"""

RELEASE = """
-- Give a lease back.  ARGV: lease id.
give_back(ARGV[1])
"""

ADOPT = """
-- Count a request admitted while Redis was away: its slot, reservation and hold, with no check (it
-- runs already).  ARGV: lease id, hold ('' when postpaid), tokens reserved, lease ttl ms.
local lease, hold, reserve, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local now = now_ms()
claim(leases, reserved, lease, reserve, now, ttl)
if hold then
  claim(holds, held, lease, hold, now, ttl)
end
"""

STANDING = """
-- A key's and its user's standing.  ARGV: window seconds.
-- Returns {tokens used, ms until the oldest bucket leaves or nil, requests in the last minute,
--          leases in flight, balance or nil, credit held}.
local window = tonumber(ARGV[1])
local now = now_ms()
local live = buckets(tokens, now, window)
local reset_in = live[1] and (live[1][1] + 1) * 60000 + window * 1000 - now or false
prune(holds, held, now)
local requests_last_minute = 0
for _, counted in ipairs(redis.call('HVALS', recent)) do
  local second, count = string.match(counted, '(%d+):(%d+)')
  if tonumber(second) > math.floor(now / 1000) - 60 then
    requests_last_minute = requests_last_minute + tonumber(count)
  end
end
return {tokens_in(live), reset_in, requests_last_minute,
        redis.call('ZCOUNT', leases, '(' .. now, '+inf'), redis.call('GET', balance), total(held)}
"""

RENEW = """
-- Extend live leases by the ttl; a lease already past its expiry stays expired.
-- KEYS: four a lease (its key's leases and reserved, its user's holds and held).
-- ARGV: ttl ms, then the lease ids.  Returns how many were renewed.
local ttl = tonumber(ARGV[1])
local now = now_ms()
local renewed = 0
for i = 2, #ARGV do
  local lease, base = ARGV[i], (i - 2) * 4
  local expiry = tonumber(redis.call('ZSCORE', KEYS[base + 1], lease))
  if expiry and expiry > now then
    redis.call('ZADD', KEYS[base + 1], 'XX', now + ttl, lease)
    redis.call('ZADD', KEYS[base + 3], 'XX', now + ttl, lease)
    for j = 1, 4 do
      keep(KEYS[base + j], ttl)
    end
    renewed = renewed + 1
  end
end
return renewed
"""

RECOVERING = """
-- The first process to see Redis back opens a grace period of ARGV[1] ms; every one learns what is left
-- of it.  KEYS: the period's key.
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
  return tonumber(ARGV[1])
end
return math.max(redis.call('PTTL', KEYS[1]), 0)
"""

INITIALIZE = """
-- Load a balance Redis does not hold yet, with the last credit ledger entry that figure includes.
-- KEYS: balance, credited.  ARGV: balance, ledger entry id.
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  redis.call('SET', KEYS[2], ARGV[2])
end
"""

CREDIT = """
-- Apply a credit ledger entry (a grant, a redeemed code, a correction) exactly once, whichever
-- process sees it first.  KEYS: balance, credited.  ARGV: entry id, amount.
-- A balance Redis does not hold will be loaded from the database, entry included.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
if tonumber(ARGV[1]) <= tonumber(redis.call('GET', KEYS[2]) or '0') then
  return false
end
redis.call('SET', KEYS[2], ARGV[1])
return redis.call('INCRBY', KEYS[1], ARGV[2])
"""


HELD = """
-- What a user's live leases hold.  KEYS: holds, held.
local now = now_ms()
local sum = 0
for _, lease in ipairs(redis.call('ZRANGE', KEYS[1], '(' .. now, '+inf', 'BYSCORE')) do
  sum = sum + (tonumber(redis.call('HGET', KEYS[2], lease)) or 0)
end
return sum
"""


async def credit_held(url: str, prefix: str, user_id: int) -> int:
    """What a user's requests in flight hold in Redis, on every process (for a correction made from the
    CLI, which sees no server's memory); raises StateUnavailable if Redis does not answer."""
    client = Redis.from_url(url, decode_responses=True, socket_timeout=1.0, socket_connect_timeout=1.0)
    try:
        with reachable():
            held: Awaitable[str] = client.eval(  # type: ignore[assignment]  # redis-py types sync and async at once
                LIBRARY + HELD, 2, f"{prefix}holds:{user_id}", f"{prefix}held:{user_id}")
            return int(await held)
    finally:
        await client.aclose()


class UserKeys(NamedTuple):
    balance: str
    holds: str
    held: str


class KeyKeys(NamedTuple):
    tokens: str
    leases: str
    reserved: str
    requests: str
    recent: str


def seconds(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000


def user_of(lease_id: str) -> int:
    return int(lease_id.split(".", 1)[0])


def decision_of(reply: list[Any], lease_id: str) -> Decision:
    """The admission script's reply as a Decision."""
    if reply[0] == 1:
        meters = [Meter(name, limit, remaining, reset_ms / 1000) for name, limit, remaining, reset_ms in reply[1]]
        balance = reply[2] if len(reply) > 2 else None
        return Decision(True, lease_id=lease_id, meters=meters, balance_micro=None if balance is None else int(balance),
                        held_micro=int(reply[3]) if len(reply) > 3 else 0)
    _, refused_by, retry_ms, detail = reply
    return Decision(False, refused_by=refused_by, retry_after=seconds(retry_ms),
                    detail=dict(zip(detail[::2], detail[1::2], strict=True)))


class RedisState:
    """Sliding request logs, leases, token windows, balances and holds, shared through Redis.

    Admissions, settlements and releases reach Redis through one `ScriptBatches`: the runs of a busy
    moment share a pipelined round trip, applied in order, so a release is never applied before the
    settlement that preceded it.  settle and release never block; `flush` waits for them.
    `start_heartbeat` renews this process's leases until `stop`.
    """

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, prefix: str = "ccgate:",
                 lease_ttl: float = 120.0, timeout: float = 1.0) -> None:
        # One immediate retry rides over a connection dropped by a restart; a dead server fails fast.
        self._redis = Redis.from_url(url, decode_responses=True, socket_timeout=timeout,
                                     socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 1))
        self.prefix = prefix
        self._ttl_ms = round(lease_ttl * 1000)
        self._admit, self._settle, self._release, self._standing, self._extend, self._adopt = (
            self._redis.register_script(LIBRARY + REQUEST_KEYS + GIVE_BACK + body)
            for body in (ADMIT, SETTLE, RELEASE, STANDING, EXTEND, ADOPT))
        self._renew = self._redis.register_script(LIBRARY + RENEW)
        self._initialize = self._redis.register_script(INITIALIZE)
        self._recovering = self._redis.register_script(RECOVERING)
        self._credit = self._redis.register_script(CREDIT)
        self._mine: dict[str, str] = {}  # lease id -> key id of the leases this process holds
        self._batches = ScriptBatches(self._redis)
        self._heartbeat: asyncio.Task[None] | None = None

    # -- admission -------------------------------------------------------------------------------

    async def admit(self, limits: Limits) -> Decision:
        lease_id = f"{limits.user_id}.{secrets.token_hex(8)}"
        hold = "" if limits.hold_micro is None else limits.hold_micro
        keys = self._keys(limits.user_id, limits.key_id)
        try:
            reply = await self._batches.run(self._admit, keys, [
                lease_id, hold, limits.token_budget or 0, limits.window_seconds, limits.reserve_tokens,
                limits.rpm or 0, limits.concurrency or 0, self._ttl_ms, limits.overdraft_micro])
        except asyncio.CancelledError:  # the run may still admit: give that lease back right after it
            self._batches.schedule(self._release, keys, [lease_id])
            raise
        decision = decision_of(reply, lease_id)
        if decision.admitted:
            self._mine[lease_id] = limits.key_id
        return decision

    async def adopt(self, limits: Limits, lease_id: str | None = None) -> str:
        """Take over a request another side admitted (this process's fallback, while Redis was away):
        Redis counts its slot, reservation and hold from now on, under a lease of its own, or under
        `lease_id`, Redis's own lease for it (claimed again: Redis may have restarted and lost it)."""
        lease_id = lease_id or f"{limits.user_id}.{secrets.token_hex(8)}"
        hold = "" if limits.hold_micro is None else limits.hold_micro
        await self._batches.run(self._adopt, self._keys(limits.user_id, limits.key_id),
                                [lease_id, hold, limits.reserve_tokens, self._ttl_ms])
        self._mine[lease_id] = limits.key_id
        return lease_id

    async def recovery_grace(self, grace: float) -> float:
        """Seconds left of the grace period after an outage, which the first process to see Redis back
        opens for `grace` seconds (the same period for every process, on Redis's clock)."""
        with reachable():
            left = await self._recovering([self.prefix + "recovering"], [round(grace * 1000)])
        return int(left) / 1000

    def settle(self, settlement: Settlement, *, release: bool = True) -> None:
        """Schedule a committed request's real use (its cost off the balance, its tokens into the
        window) and, in the same script run, giving its lease back."""
        cost = "" if settlement.hold_micro is None else settlement.cost_micro
        window = settlement.window_seconds or ""
        lease = ""
        if release:
            self._mine.pop(settlement.lease_id, None)
            lease = settlement.lease_id
        self._batches.schedule(self._settle, self._settlement_keys(settlement),
                               [cost, settlement.tokens_used, window, lease])

    async def extend(self, settlement: Settlement, hold_micro: int, reserve_tokens: int,
                     overdraft_micro: int, token_budget: int | None) -> bool:
        """Grow a running request's hold and reservation in one script run, if floor and budget allow."""
        grow = "" if settlement.hold_micro is None else hold_micro
        with reachable():
            reply = await self._batches.run(self._extend, self._settlement_keys(settlement), [
                settlement.lease_id, grow, reserve_tokens, overdraft_micro, token_budget or 0,
                settlement.window_seconds or 0])
        return bool(reply)

    def release(self, settlement: Settlement) -> None:
        """Schedule giving the lease, the token reservation and the credit hold back."""
        self._mine.pop(settlement.lease_id, None)
        self._batches.schedule(self._release, self._settlement_keys(settlement), [settlement.lease_id])

    async def caught_up(self) -> None:
        await self._batches.caught_up()

    async def flush(self) -> None:
        """Wait until every scheduled settlement and release is applied; raise if any could not be."""
        await self._batches.flush()

    # -- leases ----------------------------------------------------------------------------------

    async def renew(self, leases: list[tuple[str, str]]) -> int:
        """Extend the live ones of these (key id, lease id) leases by the TTL; how many were live."""
        if not leases:
            return 0
        keys = [name for key_id, lease_id in leases for name in self._lease_keys(key_id, lease_id)]
        with reachable():
            return int(await self._renew(keys, [self._ttl_ms, *(lease_id for _, lease_id in leases)]))

    def start_heartbeat(self) -> None:
        """Renew this process's leases every third of their TTL, until stop()."""
        if self._heartbeat is None:
            self._heartbeat = asyncio.create_task(self._beat(), name="redis-state-heartbeat")

    async def stop(self) -> None:
        """Stop the heartbeat, apply what is scheduled, and close the connections."""
        await cancel(self._heartbeat)
        try:
            await self.flush()
        finally:
            await self._batches.close()
            self._heartbeat = None
            await self._redis.aclose()

    # -- reporting and configuration -------------------------------------------------------------

    async def standing(self, key_id: str, user_id: int, window_seconds: int) -> Standing:
        with reachable():
            reply = await self._standing(self._keys(user_id, key_id), [window_seconds])
        tokens_used, reset_ms, requests, in_flight, balance, held = reply
        return Standing(tokens_used=tokens_used, tokens_reset_in=seconds(reset_ms),
                        requests_last_minute=requests, in_flight=in_flight,
                        balance_micro=None if balance is None else int(balance), held_micro=held)

    async def set_balances(self, balances: Mapping[int, int | None], credited_through: int = 0, *,
                           overwrite: bool = False) -> None:
        """Load the database's prepaid balances Redis does not hold yet (all of them when `overwrite`:
        after an outage, when Redis missed settlements), each marked as including every credit entry up
        to `credited_through`; once loaded, Redis is their live authority, kept current by commits and
        `apply_credits`."""
        if not overwrite:
            await self._batches.flush()  # this process's debits land before any balance that includes them
        with reachable():
            async with self._redis.pipeline(transaction=False) as pipe:
                for user_id, balance in balances.items():
                    if balance is None:
                        continue
                    keys = self._credit_keys(user_id)
                    if overwrite:
                        pipe.set(keys[0], balance)
                        pipe.set(keys[1], credited_through)
                    else:
                        await self._initialize(keys, [balance, credited_through], client=pipe)
                await pipe.execute()

    async def apply_credits(self, entries: list[tuple[int, int, int]]) -> None:
        """Apply (entry id, user id, amount) credit ledger entries, oldest first, each exactly once
        across all processes."""
        if not entries:
            return
        with reachable():
            async with self._redis.pipeline(transaction=False) as pipe:
                for entry_id, user_id, amount in sorted(entries):
                    await self._credit(self._credit_keys(user_id), [entry_id, amount], client=pipe)
                await pipe.execute()

    # -- inside ----------------------------------------------------------------------------------

    def _user(self, user_id: int) -> UserKeys:
        return UserKeys(*(f"{self.prefix}{kind}:{user_id}" for kind in UserKeys._fields))

    def _credit_keys(self, user_id: int) -> list[str]:
        return [self._user(user_id).balance, f"{self.prefix}credited:{user_id}"]

    def _key(self, key_id: str) -> KeyKeys:
        return KeyKeys(*(f"{self.prefix}{kind}:{key_id}" for kind in KeyKeys._fields))

    def _keys(self, user_id: int, key_id: str) -> list[str]:
        """The keys every per-request script takes, in REQUEST_KEYS' order."""
        return [*self._user(user_id), *self._key(key_id)]

    def _lease_keys(self, key_id: str, lease_id: str) -> tuple[str, str, str, str]:
        key, user = self._key(key_id), self._user(user_of(lease_id))
        return key.leases, key.reserved, user.holds, user.held

    def _settlement_keys(self, settlement: Settlement) -> list[str]:
        return self._keys(settlement.user_id, settlement.key_id)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self._ttl_ms / 3000)
            try:
                await self.renew([(key_id, lease_id) for lease_id, key_id in self._mine.items()])
            except StateUnavailable as exc:
                log.warning("could not renew %d leases: %s", len(self._mine), exc)

