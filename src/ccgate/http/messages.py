"""The Anthropic dialect: POST /v1/messages and /v1/messages/count_tokens, bytes passed through."""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp

from ccgate.billing.estimate import asks_for_1h_cache
from ccgate.billing.prices import request_flags
from ccgate.dialects.anthropic import AnthropicDialect, check_messages_request
from ccgate.http.bodies import parse_body, read_body
from ccgate.http.endpoint import endpoint, resolve_model
from ccgate.http.services import Services
from ccgate.pipeline.context import Call
from ccgate.route.sessions import claude_code_session, session_key


def upstream_path(request: Request, path: str) -> str:
    """The upstream path, keeping the client's query (`?beta=true`)."""
    query: bytes = request.scope["query_string"]
    return f"{path}?{query.decode('latin-1')}" if query else path


@endpoint(AnthropicDialect, recorded=True, route="messages")
async def create_message(request: Request, gateway: Services, call: Call) -> ASGIApp:
    headers = request.headers
    key = call.key = gateway.authenticate(headers)
    body = await read_body(request, gateway.settings.max_body_bytes)
    data = check_messages_request(parse_body(body))
    call.model = resolve_model(gateway, data["model"])
    call.stream = data.get("stream", False)
    call.max_tokens = data["max_tokens"]
    call.body_size = len(body)
    call.flags = request_flags(data, headers.getlist("anthropic-beta"))
    call.wants_1h_cache = asks_for_1h_cache(body)
    call.session_id = claude_code_session(headers)
    call.session = session_key(key.id, data, call.session_id)
    gateway.cache.ask(call, data, headers)
    return await gateway.pipeline.run(call, upstream_path(request, "/v1/messages"), body, headers.raw)


@endpoint(AnthropicDialect, route="count_tokens")
async def count_tokens(request: Request, gateway: Services, call: Call) -> ASGIApp:
    """Forwarded upstream as it is; free and unrecorded, under a per-minute limit of its own
    (gate.admission.count_tokens_rpm)."""
    call.key = gateway.authenticate(request.headers)
    body = await read_body(request, gateway.settings.max_body_bytes)
    call.model = resolve_model(gateway, check_messages_request(parse_body(body), counting=True)["model"])
    path = upstream_path(request, "/v1/messages/count_tokens")
    return await gateway.pipeline.passthrough(call, path, body, request.headers.raw)
