"""The composition root: the Gateway's parts, its ASGI app and its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Coroutine, Mapping, Sequence
from functools import partial
from typing import Any

import orjson
from redis.asyncio import Redis
from starlette.applications import Starlette

from ccgate.alerting import AlertMonitor, AlertOperations
from ccgate.billing.catalog import Catalog
from ccgate.billing.estimate import UsageEstimator
from ccgate.billing.ledger import LedgerWriter
from ccgate.billing.settle import Settler
from ccgate.broadcast import ACKS, CONFIGURATION, HEALTH, Broadcast, announce_change, confirm_change, redis_client
from ccgate.cache.policy import CachePolicy
from ccgate.cache.store import MemoryResponseStore, RedisResponseStore, ResponseStore
from ccgate.config import Settings
from ccgate.crypto import SecretBox
from ccgate.gate.admission import Defaults, Gate
from ccgate.gate.auth import Authenticator
from ccgate.gate.durations import parse_duration
from ccgate.gate.keys import KeyDirectory
from ccgate.http.routes import GatewayApp
from ccgate.obs import metrics
from ccgate.obs.alerts import Deduper, redis_claim
from ccgate.obs.observer import Observer
from ccgate.ops import Operations
from ccgate.pipeline.caching import ResponseCache
from ccgate.pipeline.core import Pipeline
from ccgate.pipeline.stored_responses import StoredResponses
from ccgate.relay.client import UpstreamClient
from ccgate.relay.forward import Forwarder
from ccgate.relay.probe import CredentialProbe
from ccgate.route.pool import Account, AccountPool
from ccgate.route.router import Router
from ccgate.route.shared import MemorySticky, RedisSticky
from ccgate.state.base import AdmissionState
from ccgate.state.memory import MemoryState
from ccgate.state.redis import RedisState
from ccgate.state.resilient import ResilientState
from ccgate.store import repo
from ccgate.store.change_marker import ChangeMarker, MarkerWatch
from ccgate.store.db import create_engine
from ccgate.store.rows import UsageRow

log = logging.getLogger("ccgate")

SUBSCRIBE_TIMEOUT = 2.0  # seconds a starting process waits for its Redis subscription (Redis may be down)
STATUS_REFRESH = 5.0  # seconds between reports of load alone; also keeps a live process counted
LOAD_FIELDS = ("in_flight", "requests_last_minute", "ratelimit")  # remaining moves with every answer


def steady(health: Sequence[Mapping[str, object]]) -> list[dict[str, object]]:
    """Account health without the load figures that change with every request."""
    return [{k: v for k, v in row.items() if k not in LOAD_FIELDS} for row in health]


class Gateway:
    """One serving process's parts, wired once; configuration reloads swap keys, prices and accounts
    whole.  Handlers see it only through http.services.Services."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.box = SecretBox(settings.server_secret())
        self.engine = create_engine(settings.database_url)
        self.writer = LedgerWriter(self.engine, on_failure=lambda error: self._database_is(False, error),
                                   background_checkpoints=settings.workers == 1)
        self.router = Router()
        self._credited_through = 0
        self.redis: Redis | None = None
        self.broadcast: Broadcast | None = None
        self._configuration_changed = asyncio.Event()
        self._announcements: list[bytes] = []  # tokens of announced changes, confirmed once loaded
        self._background: set[asyncio.Task[Any]] = set()
        announce = None
        self.state: AdmissionState
        self.sticky: MemorySticky | RedisSticky
        if settings.redis_url:
            self.redis = redis_client(settings.redis_url)
            prefix = settings.redis_prefix
            self.state = ResilientState(
                RedisState(settings.redis_url, prefix=prefix, lease_ttl=settings.lease_ttl),
                MemoryState(share=settings.workers),
                on_recovery=self._reload_balances)
            self.sticky = RedisSticky(self.redis, prefix + "sticky:")
            self.broadcast = broadcast = Broadcast(self.redis, settings.redis_url)
            health, configuration = prefix + HEALTH, prefix + CONFIGURATION
            self.router.on_cooldown = lambda *cooldown: broadcast.publish(health, orjson.dumps(cooldown))
            broadcast.on(health, lambda data: self.router.learn(*orjson.loads(data)))
            broadcast.on(configuration, self._configuration_announced)
            announce = partial(announce_change, self.redis, configuration, prefix + ACKS)
        else:
            self.state = MemoryState()
            self.sticky = MemorySticky()
        self.ops = Operations(self.engine, self.box, settings, announce)
        self.gate = Gate(self.state, Defaults(
            rpm=settings.default_rpm, concurrency=settings.default_concurrency,
            token_budget=settings.default_token_budget, window_seconds=parse_duration(settings.default_window),
            overdraft_micro=settings.default_overdraft_micro,
        ), UsageEstimator())  # one per process: what each key's settled requests taught
        self.auth = Authenticator(self.box.hash_key)
        self.authenticate = self.auth.authenticate  # the handlers' key check, without a wrapper call
        self.catalog = Catalog([])
        self.upstream = UpstreamClient(
            connect_timeout=settings.connect_timeout, first_byte_timeout=settings.first_byte_timeout,
            idle_timeout=settings.idle_timeout,
        )
        store: ResponseStore = (RedisResponseStore(self.redis, settings.redis_prefix + "cache:")
                                if self.redis is not None else MemoryResponseStore(settings.cache.max_bytes))
        self.cache = ResponseCache(store, CachePolicy(settings.cache), follow_timeout=settings.first_byte_timeout)
        self.observer = Observer.from_settings(settings.access_log, settings.log_format, settings.log_level,
                                               settings.metrics_user_labels)
        self.probe = CredentialProbe(self.upstream, on_confirmed=self._account_rejected)
        self.forwarder = Forwarder(self.router, self.sticky, self.upstream, settings.failover_attempts,
                                   on_rejected=self.probe.suspect, tracing=self.observer.tracing)
        self.pipeline = Pipeline(gate=self.gate, forwarder=self.forwarder, settler=Settler(self.writer),
                                 state=self.state, cache=self.cache, database_up=lambda: self.database_up,
                                 observer=self.observer)
        self.responses = StoredResponses(self.engine, settings.responses_retention)
        alerts = AlertOperations(self.engine, self.box)
        self.alerts = AlertMonitor(
            alerts, ledger_depth=lambda: self.writer.depth, default_window_seconds=self.gate.defaults.window_seconds,
            deduper=(Deduper(alerts.settings.repeat_seconds, redis_claim(self.redis, settings.redis_prefix))
                     if self.redis is not None else None))
        self.database_up = True
        self.process = f"{socket.gethostname()}:{os.getpid()}"  # names this process's account health reports
        self.version = -1
        self.marker = MarkerWatch(ChangeMarker(settings.data_dir))  # read-your-writes on this host
        self._reloading = asyncio.Lock()
        self.disabled_accounts: tuple[str, ...] = ()
        self._watcher: asyncio.Task | None = None

    async def start(self) -> None:
        """Start serving a database the CLI has migrated already (so N workers never race to migrate)."""
        self.writer.start()
        self.observer.start()
        self.marker.start(asyncio.get_running_loop())
        if isinstance(self.state, ResilientState) and self.broadcast is not None:
            self.state.shared.start_heartbeat()
            self.broadcast.start()
            # Listening before the first load: a change committed after it is announced to this process,
            # so the CLI waits for its confirmation; one committed before is in the load.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.broadcast.subscribed.wait(), SUBSCRIBE_TIMEOUT)
        await self.reload()
        # Everything imported and loaded so far lives as long as the process: keep it out of the
        # collector's sight, and collect the young generation less often (measured: 380 -> 283 us of
        # CPU per request, the collector having been ~16% of the event loop).
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 50, 1000)
        self._watcher = asyncio.create_task(self._watch_configuration(), name="config-watch")
        self._in_background(self.alerts.run())
        metrics.DATABASE_UP.set(1)

    async def stop(self) -> None:
        if self._watcher:
            self._watcher.cancel()
        for task in self._background:
            task.cancel()
        await self.probe.stop()
        self.marker.stop(asyncio.get_running_loop())
        await self.writer.stop()
        await self.observer.stop()
        await self.upstream.close()
        if isinstance(self.state, ResilientState) and self.broadcast is not None and self.redis is not None:
            await self.broadcast.stop()
            await self.state.close()
            await self.redis.aclose()
        await self.engine.dispose()

    async def reload(self) -> None:
        """Read keys, prices and accounts afresh."""
        self.marker.seen()  # before the read: a change committed during it raises the flag again
        async with self.engine.connect() as conn:
            version = await repo.current_version(conn)
            keys = await KeyDirectory.load(conn)
            catalog = await Catalog.load(conn)
            pool = await AccountPool.load(conn, self.box)
            disabled = tuple(row["name"] for row in await repo.all_accounts(conn) if not row["enabled"])
        self.auth.directory, self.catalog, self.version = keys, catalog, version
        self.disabled_accounts = disabled
        self.router.set_pool(pool)
        await self.writer.exclusive(self._refresh_balances)

    async def _refresh_balances(self) -> None:
        """Prepaid balances as committed, read in one snapshot with the newest ledger entry they include
        and the credits made since the last refresh; run between ledger commits so no debit of this
        process is counted twice."""
        async with self.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                balances = await repo.prepaid_balances(conn)
                through = await repo.last_ledger_id(conn)
                credits = await repo.credits_after(conn, self._credited_through)
        await self.state.set_balances(balances, through)
        await self.state.apply_credits(credits)
        self._credited_through = through

    async def _reload_balances(self) -> None:
        """What Redis needs when it answers again after an outage (it may have restarted empty)."""
        await self.writer.exclusive(self._refresh_balances)

    async def _watch_configuration(self) -> None:
        """Changes made by the CLI or admin API reach this process within one interval, or at once
        when they are announced through Redis; the accounts' health goes the other way, for
        `ccgate accounts list` and the console."""
        last_health: Sequence[Mapping[str, object]] = []
        reported = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._configuration_changed.wait(), self.settings.reload_interval)
            self._configuration_changed.clear()
            announced, self._announcements = self._announcements, []
            try:
                async with self.engine.connect() as conn:
                    version = await repo.current_version(conn)
            except Exception as exc:
                self._database_is(False, exc)
                self._announcements[:0] = announced  # confirmed once the change could be loaded
                continue
            self._database_is(True)
            try:
                if version != self.version:
                    async with self._reloading:
                        await self.reload()
                elif isinstance(self.state, ResilientState) and self.state.degraded:
                    await self._reload_balances()  # the other processes' debits, which Redis no longer relays
                if announced and self.redis is not None:
                    await confirm_change(self.redis, self.settings.redis_prefix + ACKS, announced, self.process)
                health = self.router.snapshot()
                metrics.observe_accounts(self.router.gauges(disabled=self.disabled_accounts))
                # Health (a cooldown, an error) is reported at once; load figures change under any
                # traffic, and writing them each interval held the lock the usage commits wait for.
                if steady(health) != steady(last_health) or time.monotonic() - reported > STATUS_REFRESH:
                    async with self.engine.begin() as conn:
                        await repo.replace_account_status(conn, self.process, health)
                    last_health, reported = health, time.monotonic()
            except Exception as exc:
                log.error("configuration reload failed: %s", exc)

    def _configuration_announced(self, token: bytes) -> None:
        """An admin change was announced through Redis: load it now, then confirm it with `token`."""
        self._announcements.append(token)
        self._configuration_changed.set()

    def configuration_changed(self) -> bool:
        """Whether an admin change was committed (on this host) since the configuration was last loaded."""
        return self.marker.changed()

    async def catch_up(self) -> None:
        """Load the configuration now if a committed change moved the marker; one request at a time does
        it, the others wait for it.  A database that cannot answer leaves the change to the watcher."""
        async with self._reloading:
            if not self.marker.changed():
                return
            self.marker.seen()  # on failure too: not again on every request, the watcher retries each interval
            try:
                async with self.engine.connect() as conn:
                    version = await repo.current_version(conn)
                if version != self.version:
                    await self.reload()
            except Exception as exc:
                log.error("catching up with a configuration change failed: %s", exc)

    def _database_is(self, up: bool, error: Exception | None = None) -> None:
        """Without a database nothing can be recorded, so new requests are refused (503) until it is back."""
        if up != self.database_up:
            if up:
                log.warning("the database answers again: serving")
            else:
                log.error("the database is unreachable, refusing new requests: %s", error or "usage commits fail")
        self.database_up = up
        metrics.DATABASE_UP.set(1 if up else 0)

    # -- what handlers call (http.services.Services) --------------------------------------------

    async def usage_row(self, request_id: str) -> UsageRow | None:
        async with self.engine.connect() as conn:
            return await repo.usage_row(conn, request_id)

    def redis_status(self) -> str:
        if not isinstance(self.state, ResilientState):
            return "off"
        return "degraded" if self.state.degraded else "ok"

    # -- off the request path --------------------------------------------------------------------

    async def _account_rejected(self, account: Account, reason: str) -> None:
        """An account whose own credentials a probe found refused is disabled (off the request path)."""
        await self.ops.set_account_enabled(account.name, False, reason)

    def _in_background(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def create_app(settings: Settings | None = None) -> Starlette:
    """The ASGI application; its lifespan starts and stops the Gateway."""
    gateway = Gateway(settings or Settings.from_env())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        yield
        await gateway.stop()

    return GatewayApp(gateway, changed=gateway.configuration_changed, catch_up=gateway.catch_up, lifespan=lifespan)
