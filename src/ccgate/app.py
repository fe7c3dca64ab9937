"""The composition root: the Gateway's parts, its ASGI app and its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
import time
from collections.abc import Callable
from functools import partial

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ccgate import metrics
from ccgate.billing.catalog import Catalog
from ccgate.billing.ledger import LedgerWriter
from ccgate.billing.prices import ModelPrice
from ccgate.broadcast import CONFIGURATION, HEALTH, Broadcast, announce_change, redis_client
from ccgate.cache.policy import CachePolicy
from ccgate.cache.store import MemoryResponseStore, RedisResponseStore
from ccgate.call import Call
from ccgate.config import Settings
from ccgate.crypto import SecretBox
from ccgate.errors import GatewayError
from ccgate.gate.admission import Defaults, Gate
from ccgate.gate.durations import parse_duration
from ccgate.gate.keys import KeyDirectory, KeyRecord
from ccgate.http import chat, messages, meta
from ccgate.http.errors import encode_error
from ccgate.http.fallback import fallback_routes
from ccgate.http.pipeline import Pipeline
from ccgate.http.web import create_web_app
from ccgate.ops import Operations
from ccgate.relay.client import UpstreamClient
from ccgate.route.pool import Account, AccountPool
from ccgate.route.router import Router
from ccgate.route.shared import MemorySticky, RedisSticky
from ccgate.state.memory import MemoryState
from ccgate.state.redis import RedisState
from ccgate.state.resilient import ResilientState
from ccgate.store import repo
from ccgate.store.db import create_engine

log = logging.getLogger("ccgate")

MAX_DRAIN_BYTES = 64 * 1024 * 1024
STATUS_REFRESH = 5.0  # seconds between reports of load alone; also keeps a live process counted
LOAD_FIELDS = ("in_flight", "requests_last_minute")


def steady(health: list[dict]) -> list[dict]:
    """Account health without the load figures that change with every request."""
    return [{k: v for k, v in row.items() if k not in LOAD_FIELDS} for row in health]


def credential(request: Request) -> str | None:
    """The client's key, from `x-api-key` or `Authorization: Bearer`."""
    headers = request.headers
    if key := headers.get("x-api-key"):
        return key
    authorization = headers.get("authorization", "")
    if authorization[:7].lower() == "bearer ":
        return authorization[7:].strip() or None
    return None


class Gateway:
    """Everything a request needs, built once per process; configuration reloads swap parts whole."""

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
        announce = None
        if settings.redis_url:
            self.redis = redis_client(settings.redis_url)
            prefix = settings.redis_prefix
            self.state = ResilientState(
                RedisState(settings.redis_url, prefix=prefix, lease_ttl=settings.lease_ttl), MemoryState(),
                on_recovery=self._reload_balances)
            self.sticky = RedisSticky(self.redis, prefix + "sticky:")
            self.broadcast = Broadcast(self.redis, settings.redis_url)
            health, configuration = prefix + HEALTH, prefix + CONFIGURATION
            self.router.on_cooldown = lambda *cooldown: self.broadcast.publish(health, orjson.dumps(cooldown))
            self.broadcast.on(health, lambda data: self.router.learn(*orjson.loads(data)))
            self.broadcast.on(configuration, lambda _: self._configuration_changed.set())
            announce = partial(announce_change, self.redis, configuration)
        else:
            self.state = MemoryState()
            self.sticky = MemorySticky()
        self.ops = Operations(self.engine, self.box, settings, announce)
        self.gate = Gate(self.state, Defaults(
            rpm=settings.default_rpm, concurrency=settings.default_concurrency,
            token_budget=settings.default_token_budget, window_seconds=parse_duration(settings.default_window),
        ))
        self.keys = KeyDirectory({})
        self.catalog = Catalog([])
        self.upstream = UpstreamClient(
            connect_timeout=settings.connect_timeout, first_byte_timeout=settings.first_byte_timeout,
            idle_timeout=settings.idle_timeout,
        )
        self.pipeline = Pipeline(self)
        self.cache_policy = CachePolicy(settings.cache)
        self.cache = (RedisResponseStore(self.redis, settings.redis_prefix + "cache:") if self.redis is not None
                      else MemoryResponseStore(settings.cache.max_bytes))
        self.database_up = True
        self.process = f"{socket.gethostname()}:{os.getpid()}"  # names this process's account health reports
        self.version = -1
        self._watcher: asyncio.Task | None = None

    async def start(self) -> None:
        """Start serving a database the CLI has migrated already (so N workers never race to migrate)."""
        self.writer.start()
        await self.reload()
        # Everything imported and loaded so far lives as long as the process: keep it out of the
        # collector's sight, and collect the young generation less often (measured: 380 -> 283 us of
        # CPU per request, the collector having been ~16% of the event loop).
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 50, 1000)
        self._watcher = asyncio.create_task(self._watch_configuration(), name="config-watch")
        if isinstance(self.state, ResilientState):
            self.state.shared.start_heartbeat()
            self.broadcast.start()
        metrics.DATABASE_UP.set(1)

    async def stop(self) -> None:
        if self._watcher:
            self._watcher.cancel()
        await self.writer.stop()
        await self.upstream.close()
        if isinstance(self.state, ResilientState):
            await self.broadcast.stop()
            await self.state.close()
            await self.redis.aclose()
        await self.engine.dispose()

    async def reload(self) -> None:
        """Read keys, prices and accounts afresh."""
        async with self.engine.connect() as conn:
            version = await repo.current_version(conn)
            keys = await KeyDirectory.load(conn)
            catalog = await Catalog.load(conn)
            pool = await AccountPool.load(conn, self.box)
        self.keys, self.catalog, self.version = keys, catalog, version
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
        last_health: list[dict] = []
        reported = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._configuration_changed.wait(), self.settings.reload_interval)
            self._configuration_changed.clear()
            try:
                async with self.engine.connect() as conn:
                    version = await repo.current_version(conn)
            except Exception as exc:
                self._database_is(False, exc)
                continue
            self._database_is(True)
            try:
                if version != self.version:
                    await self.reload()
                health = self.router.snapshot()
                # Health (a cooldown, an error) is reported at once; load figures change under any
                # traffic, and writing them each interval held the lock the usage commits wait for.
                if steady(health) != steady(last_health) or time.monotonic() - reported > STATUS_REFRESH:
                    async with self.engine.begin() as conn:
                        await repo.replace_account_status(conn, self.process, health)
                    last_health, reported = health, time.monotonic()
            except Exception as exc:
                log.error("configuration reload failed: %s", exc)

    def _database_is(self, up: bool, error: Exception | None = None) -> None:
        """Without a database nothing can be recorded, so new requests are refused (503) until it is back."""
        if up != self.database_up:
            if up:
                log.warning("the database answers again: serving")
            else:
                log.error("the database is unreachable, refusing new requests: %s", error or "usage commits fail")
        self.database_up = up
        metrics.DATABASE_UP.set(1 if up else 0)

    # -- what handlers call ----------------------------------------------------------------------

    def authenticate(self, request: Request) -> KeyRecord:
        key = credential(request)
        if key is None:
            raise GatewayError(401, "x-api-key header is required")
        record = self.keys.lookup(self.box.hash_key(key))
        if record is None:
            raise GatewayError(401, "invalid x-api-key")
        if record.expires_ms is not None and record.expires_ms <= repo.now_ms():
            raise GatewayError(401, "this API key has expired")
        if record.user_disabled:
            raise GatewayError(401, "this API key's user is disabled")
        return record

    def ask_cache(self, call: Call, request: dict, headers) -> None:
        """Set the call's cache key (None: it bypasses the cache) and its X-Cache status."""
        call.cache_key = self.cache_policy.key_for(
            key_id=call.key.id, user_id=call.key.user_id, key_cache_enabled=call.key.cache_enabled,
            model_id=call.model.id, request=request, headers=headers)
        call.cache_status = "MISS" if call.cache_key is not None else "BYPASS"

    def resolve_model(self, name: str) -> ModelPrice:
        model = self.catalog.resolve(name)
        if model is None:
            raise GatewayError(404, f"model: {name}")
        return model

    async def read_body(self, request: Request) -> bytes:
        """The body, or 413 once it passes the limit.  An oversized body is still read to its end
        (up to MAX_DRAIN_BYTES) so a client that is still sending can read the 413, not a reset."""
        limit = self.settings.max_body_bytes
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size <= limit:
                chunks.append(chunk)
            elif size > MAX_DRAIN_BYTES:
                break
        if size > limit:
            raise GatewayError(413, f"request body of more than {limit} bytes is too large")
        return b"".join(chunks)

    def error_response(self, call: Call, error: GatewayError, *, record: bool = True) -> Response:
        """The error in the caller's dialect; an authenticated request's failure is recorded too."""
        call.status, call.error_type = error.status, error.error_type
        if record:
            self.pipeline.record_later(call)
        return Response(encode_error(call.dialect.name, error, call.request_id), error.status,
                        headers=call.id_headers() | error.headers(), media_type="application/json")

    async def disable_account(self, account: Account, reason: str) -> None:
        await self.ops.set_account_enabled(account.name, False, reason)


def routes(gateway: Gateway) -> list[BaseRoute]:
    """Every /v1 route (also under /v1/v1, for SDKs given a base URL that already ends in /v1),
    the admin API, the health checks, and last the web dashboard (docs, sign-up, dashboard, console)."""
    v1 = [
        Route("/messages", messages.create_message, methods=["POST"]),
        Route("/messages/count_tokens", messages.count_tokens, methods=["POST"]),
        Route("/chat/completions", chat.chat_completions, methods=["POST"]),
        Route("/models", meta.list_models, methods=["GET"]),
        Route("/models/{model_id:path}", meta.get_model, methods=["GET"]),
        Route("/usage/{request_id}", meta.get_usage, methods=["GET"]),
        Route("/key-status", meta.key_status, methods=["GET"]),
        Route("/credit/redeem", meta.redeem_code, methods=["POST"]),
    ]
    table = [Route(prefix + route.path, route.endpoint, methods=route.methods)
             for prefix in ("/v1", "/v1/v1") for route in v1]
    return table + [
        Mount("/admin/api", app=BuiltOnFirstUse(partial(admin_api, gateway))),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_page, methods=["GET"]),
        *fallback_routes(),
        Mount("", app=create_web_app(gateway)),
    ]


def admin_api(gateway: Gateway) -> ASGIApp:
    from ccgate.http.admin import create_admin_api

    admin = create_admin_api()
    admin.state.gateway = gateway
    return admin


class BuiltOnFirstUse:
    """An ASGI app made when its first request comes: the admin API's FastAPI and pydantic (some
    14 MB) stay out of a process that is never asked for it."""

    def __init__(self, build: Callable[[], ASGIApp]) -> None:
        self._build = build
        self._app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            self._app = self._build()
        await self._app(scope, receive, send)


async def healthz(request: Request) -> Response:
    """Liveness: the process answers."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Readiness: the database answers (without it requests are refused); Redis may be degraded."""
    gateway = request.app.state.gateway
    redis = "off" if gateway.redis is None else ("degraded" if gateway.state.degraded else "ok")
    ready = gateway.database_up
    return JSONResponse({"ready": ready, "database": "ok" if ready else "unreachable", "redis": redis},
                        status_code=200 if ready else 503)


async def metrics_page(request: Request) -> Response:
    return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)


def create_app(settings: Settings | None = None) -> Starlette:
    """The ASGI application; its lifespan starts and stops the Gateway."""
    gateway = Gateway(settings or Settings.from_env())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        await gateway.start()
        yield
        await gateway.stop()

    app = Starlette(routes=routes(gateway), lifespan=lifespan)
    app.state.gateway = gateway
    return app
