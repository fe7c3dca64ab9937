"""Request bodies as every dialect receives them."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request

from ccgate.dialects.anthropic import parse_json_object
from ccgate.dialects.errors import TranslationError
from ccgate.errors import GatewayError, invalid

MAX_DRAIN_BYTES = 64 * 1024 * 1024

# orjson reads 1,024 levels but writes only 254, and the gateway re-serializes parts of a body (after
# wrapping them, when it translates): a body nested deeper than this is refused before anything writes it.
MAX_JSON_DEPTH = 128
_ORJSON_WRITE_DEPTH = 254

async def read_body(request: Request, limit: int) -> bytes:
    """The body, or 413 once it passes the limit.  An oversized body is still read to its end
    (up to MAX_DRAIN_BYTES) so a client that is still sending can read the 413, not a reset.
    Read from the ASGI messages themselves, without the async generator of Starlette's `stream()`."""
    chunks, size = [], 0
    message = await request.receive()
    while True:
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        elif size > MAX_DRAIN_BYTES:
            break
        if not message.get("more_body", False):
            break
        message = await request.receive()
    if size > limit:
        raise GatewayError(413, f"request body of more than {limit} bytes is too large")
    return b"".join(chunks)


def parse_body(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 saying why not."""
    try:
        data = parse_json_object(body)
    except TranslationError as error:
        raise invalid(error.message) from None
    # Fewer brackets than the limit cannot nest deeper than it: most bodies skip the check.
    if body.count(b"{") + body.count(b"[") > MAX_JSON_DEPTH and nested_deeper_than_limit(data):
        raise invalid(f"body: JSON nested more than {MAX_JSON_DEPTH} levels deep is not accepted")
    return data


def nested_deeper_than_limit(data: Any) -> bool:
    """Whether `data` nests more than MAX_JSON_DEPTH containers deep.  orjson's writer (C speed, a
    fraction of the cost of a Python walk) checks it: wrapped in enough lists that a body at the limit
    reaches exactly the writer's own depth limit, a deeper one fails to serialize."""
    wrapped = data
    for _ in range(_ORJSON_WRITE_DEPTH - MAX_JSON_DEPTH):
        wrapped = [wrapped]
    try:
        orjson.dumps(wrapped)
    except orjson.JSONEncodeError:
        return True
    return False
