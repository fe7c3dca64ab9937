"""Request bodies as both dialects receive them."""

from __future__ import annotations

import orjson

from ccgate.errors import invalid


def parse_body(body: bytes) -> dict:
    """The request body as a JSON object, or a 400 saying why not."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise invalid(f"There was an error parsing the body: {exc}") from None
    if not isinstance(data, dict):
        raise invalid("body: Input should be a valid dictionary")
    return data
