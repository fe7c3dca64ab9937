"""The Anthropic dialect: POST /v1/messages and /v1/messages/count_tokens, bytes passed through."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ccgate.call import Call
from ccgate.errors import invalid
from ccgate.http.bodies import parse_body
from ccgate.http.endpoint import endpoint
from ccgate.relay.sse import encode_event
from ccgate.route.sessions import session_key

if TYPE_CHECKING:
    from ccgate.app import Gateway


class AnthropicDialect:
    """Anthropic clients get upstream bytes unchanged; only the gateway's own errors are made here."""

    name = "anthropic"

    def answer(self, raw: bytes, message: dict) -> bytes:
        return raw

    def stream_chunk(self, raw: bytes, blocks: list[bytes]) -> bytes:
        return raw

    def stream_error(self, error_type: str, message: str) -> bytes:
        return encode_event("error", orjson.dumps({"type": "error", "error": {"type": error_type, "message": message}}))

    def stream_end(self) -> bytes:
        return b""

    def upstream_error(self, status: int, raw: bytes) -> bytes:
        return raw


_TYPE_NAMES = {str: "a valid string", list: "a valid list", dict: "a valid dictionary", bool: "a valid boolean"}


def _check_type(data: dict, field: str, expected: type | tuple[type, ...], required: bool) -> None:
    """Pydantic-style `loc: message` errors, as Anthropic words its validation failures."""
    if field not in data:
        if required:
            raise invalid(f"{field}: Field required")
        return
    value = data[field]
    kinds = expected if isinstance(expected, tuple) else (expected,)
    if isinstance(value, bool) and bool not in kinds:
        ok = False
    else:
        ok = isinstance(value, kinds)
    if not ok:
        wanted = " or ".join(_TYPE_NAMES.get(kind, "a valid integer") for kind in kinds)
        raise invalid(f"{field}: Input should be {wanted}")


def parse_messages_request(body: bytes, *, counting: bool = False) -> dict:
    """Check the fields the gateway relies on; everything else is the upstream's to judge."""
    data = parse_body(body)
    _check_type(data, "model", str, True)
    _check_type(data, "messages", list, True)
    _check_type(data, "system", (str, list), False)
    _check_type(data, "metadata", dict, False)
    if not counting:
        _check_type(data, "max_tokens", int, True)
        _check_type(data, "stream", bool, False)
        if data["max_tokens"] < 0:
            raise invalid("max_tokens: Input should be greater than or equal to 0")
    return data


def upstream_path(request: Request, path: str) -> str:
    """The upstream path, keeping the client's query (`?beta=true`)."""
    query = request.url.query
    return f"{path}?{query}" if query else path


@endpoint(AnthropicDialect, recorded=True)
async def create_message(request: Request, gateway: Gateway, call: Call) -> Response:
    call.key = gateway.authenticate(request)
    body = await gateway.read_body(request)
    data = parse_messages_request(body)
    call.model = gateway.resolve_model(data["model"])
    call.stream = data.get("stream", False)
    call.max_tokens = data["max_tokens"]
    call.body_size = len(body)
    call.session = session_key(call.key.id, data, request.headers.get("x-claude-code-session-id"))
    gateway.ask_cache(call, data, request.headers)
    return await gateway.pipeline.run(call, upstream_path(request, "/v1/messages"), body, request.headers.raw)


@endpoint(AnthropicDialect)
async def count_tokens(request: Request, gateway: Gateway, call: Call) -> Response:
    """Forwarded upstream as it is; free, unrecorded, and exempt from the key's limits."""
    call.key = gateway.authenticate(request)
    body = await gateway.read_body(request)
    call.model = gateway.resolve_model(parse_messages_request(body, counting=True)["model"])
    path = upstream_path(request, "/v1/messages/count_tokens")
    return await gateway.pipeline.passthrough(call, path, body, request.headers.raw)
