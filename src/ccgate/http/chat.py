"""The OpenAI dialect: POST /v1/chat/completions, translated onto the same pipeline as /v1/messages."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.types import ASGIApp

from ccgate.billing.estimate import asks_for_1h_cache
from ccgate.billing.prices import request_flags
from ccgate.dialects.openai import OpenAIDialect
from ccgate.dialects.openai_request import to_anthropic_request
from ccgate.errors import invalid
from ccgate.http.bodies import parse_body, read_body
from ccgate.http.endpoint import endpoint, resolve_model
from ccgate.http.services import Services
from ccgate.pipeline.context import Call
from ccgate.route.sessions import claude_code_session, session_key


@endpoint(OpenAIDialect, recorded=True, route="chat_completions")
async def chat_completions(request: Request, gateway: Services, call: Call) -> ASGIApp:
    headers = request.headers
    key = call.key = gateway.authenticate(headers)
    body = await read_body(request, gateway.settings.max_body_bytes)
    data = parse_body(body)
    if not isinstance(data.get("model"), str):
        raise invalid("model: Field required" if "model" not in data else "model: Input should be a valid string")
    model = call.model = resolve_model(gateway, data["model"])
    translated = to_anthropic_request(data, default_max_tokens=model.max_tokens)
    options = data.get("stream_options")
    dialect = call.dialect
    assert isinstance(dialect, OpenAIDialect)
    dialect.expect_usage_chunk(isinstance(options, dict) and bool(options.get("include_usage")))
    call.stream = bool(translated.get("stream"))
    call.max_tokens = translated["max_tokens"]
    upstream_body = orjson.dumps(translated)
    call.body_size = len(upstream_body)
    call.flags = request_flags(translated, headers.getlist("anthropic-beta"))
    call.wants_1h_cache = asks_for_1h_cache(upstream_body)
    call.session_id = claude_code_session(headers)
    call.session = session_key(key.id, translated, call.session_id)
    gateway.cache.ask(call, translated, headers)
    return await gateway.pipeline.run(call, "/v1/messages", upstream_body, headers.raw)
