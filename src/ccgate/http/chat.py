"""The OpenAI dialect: POST /v1/chat/completions, translated onto the same pipeline as /v1/messages."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ccgate.call import Call
from ccgate.dialects.errors import openai_error_body, openai_error_object
from ccgate.dialects.openai_request import TranslationError, to_anthropic_request
from ccgate.dialects.openai_response import to_openai_response
from ccgate.dialects.openai_stream import DONE, KEEP_ALIVE, ChunkTranslator, encode
from ccgate.errors import invalid
from ccgate.http.bodies import parse_body
from ccgate.http.endpoint import endpoint
from ccgate.relay.sse import event_data, event_name
from ccgate.route.sessions import session_key

if TYPE_CHECKING:
    from ccgate.app import Gateway


class OpenAIDialect:
    """Translates each Anthropic answer, event by event, into Chat Completions."""

    name = "openai"

    def __init__(self) -> None:
        self.created = int(time.time())
        self.translator = ChunkTranslator(created=self.created, include_usage=False)

    def expect_usage_chunk(self, include_usage: bool) -> None:
        self.translator = ChunkTranslator(created=self.created, include_usage=include_usage)

    def answer(self, raw: bytes, message: dict) -> bytes:
        return orjson.dumps(to_openai_response(message, created=self.created))

    def stream_chunk(self, raw: bytes, blocks: list[bytes]) -> bytes:
        out = []
        for block in blocks:
            if event_name(block) == b"ping":  # upstream is thinking: keep the client's connection warm
                out.append(KEEP_ALIVE)
                continue
            data = event_data(block)
            if data:
                out.extend(encode(chunk) for chunk in self.translator.feed(orjson.loads(data)))
        return b"".join(out)

    def stream_error(self, error_type: str, message: str) -> bytes:
        return encode(openai_error_object(error_type, message))

    def stream_end(self) -> bytes:
        return DONE

    def upstream_error(self, status: int, raw: bytes) -> bytes:
        """Anthropic's error, re-spoken in OpenAI's envelope with the same type and message."""
        try:
            error = orjson.loads(raw)["error"]
            return openai_error_body(error["type"], error["message"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return openai_error_body("api_error", f"upstream answered HTTP {status}")


@endpoint(OpenAIDialect, recorded=True)
async def chat_completions(request: Request, gateway: Gateway, call: Call) -> Response:
    call.key = gateway.authenticate(request)
    body = await gateway.read_body(request)
    data = parse_body(body)
    if not isinstance(data.get("model"), str):
        raise invalid("model: Field required" if "model" not in data else "model: Input should be a valid string")
    call.model = gateway.resolve_model(data["model"])
    try:
        translated = to_anthropic_request(data, default_max_tokens=call.model.max_tokens)
    except TranslationError as error:
        raise invalid(error.message) from None
    options = data.get("stream_options")
    call.dialect.expect_usage_chunk(isinstance(options, dict) and bool(options.get("include_usage")))
    call.stream = bool(translated.get("stream"))
    call.max_tokens = translated["max_tokens"]
    upstream_body = orjson.dumps(translated)
    call.body_size = len(upstream_body)
    call.session = session_key(call.key.id, translated, request.headers.get("x-claude-code-session-id"))
    gateway.ask_cache(call, translated, request.headers)
    return await gateway.pipeline.run(call, "/v1/messages", upstream_body, request.headers.raw)
