"""In-process stand-ins for what the request core talks to: an upstream transport that plays scripted
answers, a ledger writer that keeps rows in memory, and an ASGI caller.  With them the real pipeline,
gate, router, relay and state run in milliseconds, with no socket and no database."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import aiohttp
import orjson
from multidict import CIMultiDict, CIMultiDictProxy
from starlette.applications import Starlette
from starlette.routing import Route

from ccgate.billing.catalog import Catalog
from ccgate.billing.prices import ModelPrice
from ccgate.billing.settle import Settler
from ccgate.cache.policy import CachePolicy, CacheSettings
from ccgate.cache.store import MemoryResponseStore
from ccgate.dialects.anthropic_stream import encode_events, message_events
from ccgate.errors import GatewayError
from ccgate.gate.admission import Defaults, Gate
from ccgate.gate.keys import KeyRecord
from ccgate.http.routes import V1
from ccgate.pipeline.caching import ResponseCache
from ccgate.pipeline.core import Pipeline
from ccgate.relay.forward import Forwarder
from ccgate.route.pool import Account, AccountPool
from ccgate.route.router import Router
from ccgate.route.shared import MemorySticky
from ccgate.state.memory import MemoryState
from ccgate.store.rows import UsageRow

HAIKU = ModelPrice(
    id="claude-haiku-4-5", display_name="Claude Haiku 4.5", created_at="2025-10-01T00:00:00Z",
    max_input_tokens=200_000, max_tokens=64_000, input_price=1_000_000, output_price=5_000_000,
    cache_write_5m_price=1_250_000, cache_write_1h_price=2_000_000, cache_read_price=100_000)


# -- the upstream ---------------------------------------------------------------------------------

Pause = float  # in a chunk script: seconds of silence


class FakeContent:
    """The response body as aiohttp's StreamReader hands it out: chunk by chunk."""

    def __init__(self, chunks: list[bytes | Exception | Pause]) -> None:
        self._chunks = deque(chunks)

    async def readany(self) -> bytes:
        while self._chunks:
            item = self._chunks.popleft()
            if isinstance(item, Exception):
                raise item
            if isinstance(item, float):
                await asyncio.sleep(item)
                continue
            return item
        return b""


class FakeResponse:
    """What the failover loop and the relay use of an aiohttp.ClientResponse."""

    def __init__(self, status: int, body: bytes | list[bytes | Exception | Pause],
                 headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.headers = CIMultiDictProxy(CIMultiDict(headers or {}))
        chunks = body if isinstance(body, list) else [body]
        self.content = FakeContent(chunks)
        self.closed = False

    async def read(self) -> bytes:
        parts = []
        while chunk := await self.content.readany():
            parts.append(chunk)
        return b"".join(parts)

    def close(self) -> None:
        self.closed = True


@dataclass
class Sent:
    base_url: str
    path: str
    body: bytes
    headers: dict[str, str]


@dataclass
class FakeUpstream:
    """Plays, per account base URL, the answers queued for it, and remembers what was sent."""

    idle_timeout: float = 2.0
    answers: dict[str, deque[FakeResponse | Exception]] = field(default_factory=dict)
    sent: list[Sent] = field(default_factory=list)
    responses: list[FakeResponse] = field(default_factory=list)

    probes: dict[str, deque[int | None]] = field(default_factory=dict)  # credential probe statuses per base URL

    def queue(self, base_url: str, *answers: FakeResponse | Exception) -> None:
        self.answers.setdefault(base_url, deque()).extend(answers)

    async def post(self, base_url: str, path: str, body: bytes, headers: dict[str, str]) -> FakeResponse:
        self.sent.append(Sent(base_url, path, body, headers))
        answer = self.answers[base_url].popleft()
        if isinstance(answer, Exception):
            raise answer
        self.responses.append(answer)
        return answer

    async def get_status(self, base_url: str, path: str, headers: dict[str, str]) -> int | None:
        self.sent.append(Sent(base_url, path, b"", headers))
        return self.probes[base_url].popleft()


def message(text: str = "Hello there", *, input_tokens: int = 12, output_tokens: int = 7, **usage: Any) -> dict:
    """An Anthropic message as the upstream answers it."""
    return {"id": "msg_fake", "type": "message", "role": "assistant", "model": HAIKU.id,
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens, **usage}}


def answer(status: int = 200, payload: dict | None = None, **headers: str) -> FakeResponse:
    return FakeResponse(status, orjson.dumps(payload if payload is not None else message()),
                        {"request-id": "req_upstream", **headers})


def error(status: int, error_type: str, text: str = "upstream says no", **headers: str) -> FakeResponse:
    return answer(status, {"type": "error", "error": {"type": error_type, "message": text}}, **headers)


def stream_events(payload: dict | None = None) -> list[bytes]:
    """The SSE events that stream a message, one chunk each."""
    events = encode_events(message_events(payload or message()))
    return [block + b"\n\n" for block in events.split(b"\n\n")[:-1]]


def long_stream_events(deltas: int, piece: str = "word " * 8, *, input_tokens: int = 12,
                       output_tokens: int | None = None) -> list[bytes]:
    """A streamed text answer of `deltas` content deltas of `piece` each, one chunk per event; the final
    message_delta reports `output_tokens` (default: a token per 4 characters)."""
    reported = output_tokens if output_tokens is not None else deltas * len(piece) // 4
    events = message_events(message("", input_tokens=input_tokens, output_tokens=reported))
    start = next(i for i, event in enumerate(events) if event["type"] == "content_block_start") + 1
    events[start:start] = [{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
                           for _ in range(deltas)]
    return [block + b"\n\n" for block in encode_events(events).split(b"\n\n")[:-1]]


def stream(chunks: list[bytes | Exception | Pause] | None = None) -> FakeResponse:
    return FakeResponse(200, chunks if chunks is not None else stream_events(),
                        {"content-type": "text/event-stream", "request-id": "req_upstream"})


def broken_stream_error() -> Exception:
    return aiohttp.ClientPayloadError("connection reset mid-stream")


# -- the ledger -----------------------------------------------------------------------------------

class FakeWriter:
    """The group-commit writer's contract in memory: a row is committed, then its on_commit runs."""

    def __init__(self) -> None:
        self.rows: list[UsageRow] = []
        self.refusals: list[UsageRow] = []
        self.hold: asyncio.Event | None = None  # set: commits wait until it is set
        self.fail = False

    async def record(self, row: UsageRow, *, prepaid: bool, on_commit: Callable[[], None] | None = None) -> None:
        if self.hold is not None:
            await self.hold.wait()
        if self.fail:
            raise ConnectionError("database unreachable")
        self.rows.append(row)
        if on_commit is not None:
            on_commit()

    def record_later(self, row: UsageRow, *, prepaid: bool) -> None:
        self.refusals.append(row)


# -- a whole core ---------------------------------------------------------------------------------

def account(number: int, priority: int = 0) -> Account:
    return Account(id=number, name=f"account-{number}", api_key=f"sk-ant-fake-{number}",
                   base_url=f"http://upstream-{number}", models=None, priority=priority, weight=1, rpm=None,
                   concurrency=None)


def key(user_id: int = 1, *, prepaid: bool = False, key_id: str | None = None, **limits: Any) -> KeyRecord:
    fields: dict[str, Any] = {"expires_ms": None, "rpm": None, "concurrency": None, "token_budget": None,
                              "window_seconds": None, "models": None} | limits
    return KeyRecord(id=key_id or f"key_{user_id}", user_id=user_id, name="test", display="cc_user_...test",
                     user_disabled=False, prepaid=prepaid, **fields)


@dataclass
class Core:
    """The real request core over fakes: pipeline, gate, router, state and cache."""

    pipeline: Pipeline
    state: MemoryState
    router: Router
    upstream: FakeUpstream
    writer: FakeWriter
    rejected: list[tuple[str, str]]


def core(accounts: int = 2, *, balances: dict[int, int] | None = None, cache: bool = False) -> Core:
    state, router, upstream, writer = MemoryState(), Router(), FakeUpstream(), FakeWriter()
    # Account 1 is the first choice, account 2 the next, and so on: failover is deterministic.
    router.set_pool(AccountPool([account(n, priority=accounts - n) for n in range(1, accounts + 1)]))
    rejected: list[tuple[str, str]] = []
    forwarder = Forwarder(router, MemorySticky(), upstream, attempts=3,
                          on_rejected=lambda acc, reason: rejected.append((acc.name, reason)))
    store = MemoryResponseStore(1 << 20)
    response_cache = ResponseCache(store, CachePolicy(CacheSettings(enabled=cache)), follow_timeout=1.0)
    pipeline = Pipeline(gate=Gate(state, Defaults()), forwarder=forwarder, settler=Settler(writer),  # type: ignore[arg-type]
                        state=state, cache=response_cache, database_up=lambda: True)
    if balances:
        state._balances.update(balances)  # as set_balances would from the database
    return Core(pipeline, state, router, upstream, writer, rejected)


class FakeServices:
    """http.services.Services over a fake core: the real handlers run on it in-process."""

    def __init__(self, core: Core, keys: dict[str, KeyRecord]) -> None:
        self.core = core
        self.keys = keys
        self.settings = SimpleNamespace(max_body_bytes=1 << 20)
        self.catalog = Catalog([HAIKU])
        self.pipeline = core.pipeline
        self.cache = core.pipeline.cache
        self.gate = core.pipeline.gate
        self.state = core.state

    def authenticate(self, headers: Mapping[str, str]) -> KeyRecord:
        record = self.keys.get(headers.get("x-api-key", ""))
        if record is None:
            raise GatewayError(401, "invalid x-api-key")
        return record

    async def usage_row(self, request_id: str) -> UsageRow | None:
        return next((row for row in self.core.writer.rows if row.request_id == request_id), None)

    def redis_status(self) -> str:
        return "off"


def api(services: FakeServices) -> Starlette:
    """The /v1 API routes over these services."""
    app = Starlette(routes=[Route("/v1" + route.path, route.endpoint, methods=route.methods) for route in V1])
    app.state.gateway = services
    return app


# -- an ASGI caller -------------------------------------------------------------------------------

@dataclass
class Exchange:
    """What an ASGI app sent: status, headers and each body chunk in order."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] = field(default_factory=list)

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    def json(self) -> Any:
        return orjson.loads(self.body)


async def call_asgi(app: Any, *, method: str = "POST", path: str = "/", body: bytes = b"",
                    headers: dict[str, str] | None = None, hang_up_after: int | None = None,
                    on_chunk: Callable[[Exchange], None] | None = None) -> Exchange:
    """Run one HTTP exchange through an ASGI app; `hang_up_after` body chunks, the client leaves."""
    exchange, gone = Exchange(), asyncio.Event()
    request_sent = False

    async def receive() -> dict:
        nonlocal request_sent
        if not request_sent:
            request_sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            exchange.status = message["status"]
            exchange.headers = {k.decode(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            if message.get("body"):
                exchange.chunks.append(message["body"])
                if on_chunk is not None:
                    on_chunk(exchange)
            if hang_up_after is not None and len(exchange.chunks) >= hang_up_after:
                gone.set()
            if not message.get("more_body"):
                gone.set()

    raw_headers = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": raw_headers, "client": ("127.0.0.1", 1234), "server": ("127.0.0.1", 80)}
    await app(scope, receive, send)
    return exchange
