"""Request bodies as both dialects receive them."""

from __future__ import annotations

from typing import Any

import orjson

from ccgate.errors import invalid

# orjson reads 1,024 levels but writes only 254, and the gateway re-serializes parts of a body (after
# wrapping them, when it translates): a body nested deeper than this is refused before anything writes it.
MAX_JSON_DEPTH = 128
_ORJSON_WRITE_DEPTH = 254


def parse_body(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 saying why not."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise invalid(f"There was an error parsing the body: {exc}") from None
    if not isinstance(data, dict):
        raise invalid("body: Input should be a valid dictionary")
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
