"""The simulator's HTTP face: Anthropic's /v1 endpoints and the /_sim control API, on aiohttp.

/v1/messages, /v1/messages/count_tokens, /v1/models and /v1/models/{id} behave as
anthropic-api.md describes.  /_sim/requests (GET, DELETE), /_sim/stats (GET) and /_sim/faults
(GET, POST `{"api_key", "kind", "count", "retry_after", "after_events", "delay_ms"}`, DELETE)
let tests look inside and inject faults.  A request picks a fault by the `x-sim-fault` header
first, then a `[[sim:fault=KIND]]` directive (with `[[sim:delay_ms=N]]` for a slow first byte),
then the standing fault of its API key.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from ccgate.dialects.errors import anthropic_error_body
from ccgate.sim.cache import CacheUsage, PromptCache, breakpoints
from ccgate.sim.catalog import get_model, list_models
from ccgate.sim.config import SimConfig
from ccgate.sim.errors import ApiError, invalid
from ccgate.sim.faults import Fault, FaultBook, fault_from_headers
from ccgate.sim.generate import (
    Directives,
    Reply,
    generate,
    last_user_text,
    read_directives,
)
from ccgate.sim.ids import new_id
from ccgate.sim.ratelimit import RateLimiter
from ccgate.sim.records import Recorder
from ccgate.sim.stream import build_events, send_events
from ccgate.sim.tokens import prompt_segments
from ccgate.sim.validate import validate_count_tokens, validate_messages

MAX_BODY_BYTES = 32 * 1024 * 1024
ORGANIZATION_ID = "00000000-0000-4000-8000-00000000c0de"
JSON = "application/json"


class SimState:
    """Everything one simulator instance remembers between requests."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.cache = PromptCache()
        self.faults = FaultBook(config.faults)
        self.limiter = RateLimiter(config.rpm_limit)
        self.recorder = Recorder(config.record_limit)


STATE = web.AppKey("ccgate_sim_state", SimState)


@dataclass(slots=True)
class Call:
    """One admitted /v1 request as the endpoint handlers see it."""

    request: web.Request
    api_key: str
    headers: dict[str, str]  # response headers so far: request-id and friends
    payload: Any = None  # the parsed JSON body of a POST
    text: str = ""  # the last user text, directives removed
    directives: Directives | None = None
    fault: Fault | None = None  # a midstream fault left for the stream writer


Handler = Callable[[SimState, Call], Awaitable[web.StreamResponse]]


def api_key_of(headers: Any) -> str | None:
    """The caller's credential: `x-api-key`, else `Authorization: Bearer`."""
    key = headers.get("x-api-key")
    if key:
        return key
    auth = headers.get("authorization", "")
    return auth[7:].strip() or None if auth[:7].lower() == "bearer " else None


def json_response(data: Any, headers: dict[str, str] | None = None, status: int = 200) -> web.Response:
    """A JSON response encoded with orjson."""
    return web.Response(status=status, body=orjson.dumps(data), headers={"Content-Type": JSON, **(headers or {})})


def error_response(error: ApiError, headers: dict[str, str]) -> web.Response:
    """Anthropic's error envelope with the request id of this call."""
    body = anthropic_error_body(error.error_type, error.message, headers.get("request-id"))
    return web.Response(status=error.status, body=body, headers={"Content-Type": JSON, **headers, **error.headers})


def _parse_json(body: bytes) -> Any:
    """The request body as JSON, or Anthropic's 400 for malformed JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise invalid(f"The request body is not valid JSON: {exc}") from None


def _directive_fault(directives: Directives) -> Fault | None:
    """The fault a `[[sim:fault=KIND]]` directive asks for."""
    if directives.fault is None:
        return None
    try:
        return Fault(directives.fault, delay_ms=1000 if directives.delay_ms is None else directives.delay_ms)
    except ValueError as exc:
        raise invalid(f"[[sim:fault={directives.fault}]]: {exc}") from None


async def _inject(state: SimState, call: Call, fault: Fault | None, streaming: bool) -> web.StreamResponse | None:
    """Act on a fault before any response byte: raise its error, reset, or delay; keep midstream ones."""
    if fault is None or not fault.applies_to(streaming):
        return None
    state.recorder.faults[fault.kind] += 1
    error = fault.error()
    if error is not None:
        raise error
    if fault.kind == "reset":
        if call.request.transport is not None:
            call.request.transport.abort()
        return web.Response()  # never sent: the connection is gone
    if fault.kind == "slow-first-byte":
        await asyncio.sleep(fault.delay_ms / 1000)
    else:
        call.fault = fault
    return None


def v1(handler: Handler, *, json_body: bool = False, rate_limited: bool = False) -> Callable[
        [web.Request], Awaitable[web.StreamResponse]]:
    """Wrap an endpoint in what every /v1 call goes through: record, auth, parse, faults, limits."""

    async def endpoint(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        headers = {"request-id": new_id("req_"), "anthropic-organization-id": ORGANIZATION_ID}
        try:
            body, too_large = await request.read(), False
        except web.HTTPRequestEntityTooLarge:
            body, too_large = b"", True
        api_key = api_key_of(request.headers)
        state.recorder.record(request, body, api_key)
        try:
            if state.config.latency_ms:
                await asyncio.sleep(state.config.latency_ms / 1000)
            if too_large:
                raise ApiError(413, "Request exceeds the maximum allowed number of bytes.")
            if api_key is None:
                raise ApiError(401, "x-api-key header is required")
            call = Call(request, api_key, headers)
            if json_body:
                if "anthropic-version" not in request.headers:
                    raise invalid("anthropic-version: header is required")
                call.payload = _parse_json(body)
                call.text, call.directives = read_directives(last_user_text(call.payload))
            streaming = isinstance(call.payload, dict) and call.payload.get("stream") is True
            fault = fault_from_headers(request.headers)
            if fault is None and call.directives is not None:
                fault = _directive_fault(call.directives)
            if fault is None:
                fault = state.faults.take(api_key, streaming)
            early = await _inject(state, call, fault, streaming)
            if early is not None:
                return early
            if rate_limited:
                state.limiter.admit(api_key, time.time())
            return await handler(state, call)
        except ApiError as exc:
            if api_key is not None:
                headers.update(state.limiter.headers(api_key, time.time()))
            return error_response(exc, headers)

    return endpoint


def _betas(request: web.Request) -> frozenset[str]:
    """The anthropic-beta values, comma-separated and/or repeated."""
    values = request.headers.getall("anthropic-beta", ())
    return frozenset(beta.strip() for value in values for beta in value.split(","))


def _check_length(total: int, limit: int) -> None:
    """400 when the prompt does not fit the model's context window."""
    if total > limit:
        raise invalid(f"prompt is too long: {total} tokens > {limit} maximum")


async def messages(state: SimState, call: Call) -> web.StreamResponse:
    """POST /v1/messages."""
    body = call.payload
    spec = validate_messages(body, _betas(call.request))
    segments = prompt_segments(body)
    points = breakpoints(segments, body.get("cache_control"))
    total = sum(seg.tokens for seg in segments)
    _check_length(total, spec.max_input_tokens)
    now = time.time()
    if points:
        min_tokens = state.config.cache_min_tokens
        if min_tokens is None:
            min_tokens = spec.min_cacheable_tokens
        context = orjson.dumps([body.get("tool_choice"), body.get("thinking")], option=orjson.OPT_SORT_KEYS)
        split = state.cache.account(call.api_key, spec.id, segments, points, min_tokens, context, now)
    else:
        split = CacheUsage(total)
    reply = generate(body, call.text, call.directives or Directives())
    usage = split.usage(reply.output_tokens, body.get("inference_geo") or "not_available")
    state.limiter.spend(call.api_key, now, total - split.read, reply.output_tokens)
    message = {"id": new_id("msg_"), "type": "message", "role": "assistant", "model": spec.id,
               "content": reply.content, "stop_reason": reply.stop_reason, "stop_sequence": reply.stop_sequence,
               "stop_details": None, "usage": usage}
    headers = call.headers | state.limiter.headers(call.api_key, now)
    config = state.config
    if body.get("stream"):
        return await _stream(state, call, message, reply, headers)
    if config.ttft_ms or config.tokens_per_sec:
        pacing = reply.output_tokens / config.tokens_per_sec if config.tokens_per_sec else 0.0
        await asyncio.sleep(config.ttft_ms / 1000 + pacing)
    return json_response(message, headers)


async def _stream(state: SimState, call: Call, message: dict[str, Any], reply: Reply,
                  headers: dict[str, str]) -> web.StreamResponse:
    """Send the reply as SSE, counting open, completed and client-cancelled streams."""
    resp = web.StreamResponse(headers=headers | {"Content-Type": "text/event-stream; charset=utf-8",
                                                 "Cache-Control": "no-cache"})
    resp.enable_chunked_encoding()
    if call.fault is not None and call.fault.kind == "midstream-error":
        resp.force_close()
    events = build_events(message, reply)
    recorder = state.recorder
    await resp.prepare(call.request)
    recorder.open_streams += 1
    try:
        completed = await send_events(call.request, resp, events, state.config.ttft_ms,
                                      state.config.tokens_per_sec, call.fault)
    except (ConnectionError, asyncio.CancelledError):
        recorder.cancelled_streams += 1
        raise
    finally:
        recorder.open_streams -= 1
    if completed:
        recorder.completed_streams += 1
    return resp


async def count_tokens(state: SimState, call: Call) -> web.StreamResponse:
    """POST /v1/messages/count_tokens: the total input /v1/messages would report."""
    body = call.payload
    spec = validate_count_tokens(body)
    segments = prompt_segments(body)
    breakpoints(segments, body.get("cache_control"))
    total = sum(seg.tokens for seg in segments)
    _check_length(total, spec.max_input_tokens)
    return json_response({"input_tokens": total}, call.headers)


async def models(state: SimState, call: Call) -> web.StreamResponse:
    """GET /v1/models."""
    query = call.request.query
    return json_response(list_models(query.get("limit"), query.get("after_id"), query.get("before_id")),
                         call.headers)


async def model(state: SimState, call: Call) -> web.StreamResponse:
    """GET /v1/models/{model_id}."""
    return json_response(get_model(call.request.match_info["model_id"]), call.headers)


async def not_found(state: SimState, call: Call) -> web.StreamResponse:
    """Any other /v1 path."""
    raise ApiError(404, "Not Found")


async def get_requests(request: web.Request) -> web.Response:
    """GET /_sim/requests: the recorded /v1 requests."""
    return json_response(request.app[STATE].recorder.requests())


async def clear_requests(request: web.Request) -> web.Response:
    """DELETE /_sim/requests: forget recorded requests and counters."""
    request.app[STATE].recorder.clear()
    return web.Response(status=204)


async def get_stats(request: web.Request) -> web.Response:
    """GET /_sim/stats: request, fault and stream counters."""
    return json_response(request.app[STATE].recorder.stats())


async def get_faults(request: web.Request) -> web.Response:
    """GET /_sim/faults: the standing per-key faults."""
    return json_response(request.app[STATE].faults.as_json())


async def set_fault(request: web.Request) -> web.Response:
    """POST /_sim/faults: install a standing fault for an API key ("*" for all)."""
    try:
        data = orjson.loads(await request.read())
        api_key = data["api_key"]
        if not isinstance(api_key, str):
            raise TypeError("api_key must be a string")
        fault = Fault.from_mapping(data)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        return error_response(invalid(f"fault: {exc!r}"), {})
    request.app[STATE].faults.set(api_key, fault)
    return json_response({"api_key": api_key, **fault.as_json()})


async def clear_faults(request: web.Request) -> web.Response:
    """DELETE /_sim/faults: remove every standing fault."""
    request.app[STATE].faults.clear()
    return web.Response(status=204)


def create_app(config: SimConfig) -> web.Application:
    """The simulator as an aiohttp application."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[STATE] = SimState(config)
    app.router.add_post("/v1/messages", v1(messages, json_body=True, rate_limited=True))
    app.router.add_post("/v1/messages/count_tokens", v1(count_tokens, json_body=True))
    app.router.add_get("/v1/models", v1(models), allow_head=False)
    app.router.add_get("/v1/models/{model_id}", v1(model), allow_head=False)
    app.router.add_get("/_sim/requests", get_requests)
    app.router.add_delete("/_sim/requests", clear_requests)
    app.router.add_get("/_sim/stats", get_stats)
    app.router.add_get("/_sim/faults", get_faults)
    app.router.add_post("/_sim/faults", set_fault)
    app.router.add_delete("/_sim/faults", clear_faults)
    app.router.add_route("*", "/v1/{path:.*}", v1(not_found))
    return app


async def start_sim(host: str, port: int, config: SimConfig) -> tuple[web.AppRunner, int]:
    """Start a simulator (port 0 picks a free one); returns the runner and the bound port.

    Handlers are cancelled when their client goes away, so a hang-up is seen at once.
    """
    runner = web.AppRunner(create_app(config), handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner, runner.addresses[0][1]


def run_sim(host: str, port: int, config: SimConfig) -> None:
    """Serve a simulator until interrupted (for `ccgate sim`)."""
    web.run_app(create_app(config), host=host, port=port, handler_cancellation=True, access_log=None)
