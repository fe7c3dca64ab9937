"""Request bodies as every dialect receives them."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from ccgate.dialects.anthropic import parse_json_object
from ccgate.dialects.errors import TranslationError
from ccgate.errors import GatewayError, invalid

MAX_DRAIN_BYTES = 64 * 1024 * 1024


async def read_body(request: Request, limit: int) -> bytes:
    """The body, or 413 once it passes the limit.  An oversized body is still read to its end
    (up to MAX_DRAIN_BYTES) so a client that is still sending can read the 413, not a reset."""
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


def parse_body(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 saying why not."""
    try:
        return parse_json_object(body)
    except TranslationError as error:
        raise invalid(error.message) from None
