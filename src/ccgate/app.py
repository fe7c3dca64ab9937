"""The composition root: the Gateway's parts, its ASGI app and its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from ccgate.billing.catalog import Catalog
from ccgate.billing.ledger import LedgerWriter
from ccgate.billing.prices import ModelPrice
from ccgate.call import Call
from ccgate.config import Settings
from ccgate.crypto import SecretBox
from ccgate.errors import GatewayError
from ccgate.gate.admission import Defaults, Gate
from ccgate.gate.durations import parse_duration
from ccgate.gate.keys import KeyDirectory, KeyRecord
from ccgate.http import chat, messages, meta
from ccgate.http.admin import create_admin_api
from ccgate.http.errors import encode_error
from ccgate.http.pipeline import Pipeline
from ccgate.ops import Operations
from ccgate.relay.client import UpstreamClient
from ccgate.route.pool import Account, AccountPool
from ccgate.route.router import Router
from ccgate.state.memory import MemoryState
from ccgate.store import repo
from ccgate.store.db import create_engine, migrate_async

log = logging.getLogger("ccgate")

MAX_DRAIN_BYTES = 64 * 1024 * 1024


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
        self.ops = Operations(self.engine, self.box, settings)
        self.writer = LedgerWriter(self.engine)
        self.router = Router()
        self.state = MemoryState()
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
        self.version = -1
        self._watcher: asyncio.Task | None = None

    async def start(self) -> None:
        await migrate_async(self.settings.database_url)
        self.writer.start()
        await self.reload()
        self._watcher = asyncio.create_task(self._watch_configuration(), name="config-watch")

    async def stop(self) -> None:
        if self._watcher:
            self._watcher.cancel()
        await self.writer.stop()
        await self.upstream.close()
        await self.engine.dispose()

    async def reload(self) -> None:
        """Read keys, prices and accounts afresh."""
        async with self.engine.connect() as conn:
            version = await repo.current_version(conn)
            keys = await KeyDirectory.load(conn)
            catalog = await Catalog.load(conn)
            pool = await AccountPool.load(conn, self.box)
        self.keys, self.catalog, self.router.pool, self.version = keys, catalog, pool, version
        await self.writer.exclusive(self._refresh_balances)

    async def _refresh_balances(self) -> None:
        """Prepaid balances as committed; run between ledger commits so no debit is counted twice."""
        async with self.engine.connect() as conn:
            balances = await repo.prepaid_balances(conn)
        await self.state.set_balances(balances)

    async def _watch_configuration(self) -> None:
        """Changes made by the CLI or admin API reach this process within one interval."""
        while True:
            await asyncio.sleep(self.settings.reload_interval)
            try:
                async with self.engine.connect() as conn:
                    version = await repo.current_version(conn)
                if version != self.version:
                    await self.reload()
            except Exception as exc:
                log.error("configuration reload failed: %s", exc)

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
    the admin API, and the health checks."""
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
    admin = create_admin_api()
    admin.state.gateway = gateway
    return table + [
        Mount("/admin/api", app=admin),
        Route("/", root, methods=["GET", "HEAD"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]


async def root(request: Request) -> Response:
    return JSONResponse({"service": "ccgate", "docs": "/docs"})


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


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
