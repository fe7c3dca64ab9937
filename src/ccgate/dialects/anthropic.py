"""The Anthropic dialect: bytes passed through as they came, and the few checks the gateway needs."""

from __future__ import annotations

from typing import Any

import orjson

from ccgate.dialects.errors import TranslationError
from ccgate.dialects.sse import encode_event

_TYPE_NAMES = {str: "a valid string", list: "a valid list", dict: "a valid dictionary", bool: "a valid boolean"}


class AnthropicDialect:
    """Anthropic clients get upstream bytes unchanged; only the gateway's own errors are made here."""

    name = "anthropic"

    def answer(self, raw: bytes, message: dict[str, Any]) -> bytes:
        return raw

    def stream_chunk(self, raw: bytes, blocks: list[bytes]) -> bytes:
        return raw

    def stream_error(self, error_type: str, message: str) -> bytes:
        return encode_event("error", orjson.dumps({"type": "error", "error": {"type": error_type, "message": message}}))

    def stream_end(self) -> bytes:
        return b""

    def upstream_error(self, status: int, raw: bytes) -> bytes:
        return raw


def parse_json_object(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or a TranslationError saying why not."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise TranslationError(f"There was an error parsing the body: {exc}") from None
    if not isinstance(data, dict):
        raise TranslationError("body: Input should be a valid dictionary")
    return data


# The fields the gateway relies on: (name, accepted types, required); counting requests skip the last two.
_FIELDS: tuple[tuple[str, tuple[type, ...], bool], ...] = (
    ("model", (str,), True), ("messages", (list,), True), ("system", (str, list), False),
    ("metadata", (dict,), False), ("max_tokens", (int,), True), ("stream", (bool,), False))


def check_messages_request(data: dict[str, Any], *, counting: bool = False) -> dict[str, Any]:
    """Check the fields the gateway relies on; everything else is the upstream's to judge.  Errors are
    Pydantic-style `loc: message`, as Anthropic words its validation failures."""
    for field, kinds, required in _FIELDS[:4] if counting else _FIELDS:
        if field not in data:
            if required:
                raise TranslationError(f"{field}: Field required", field)
            continue
        value = data[field]
        if not (bool in kinds if isinstance(value, bool) else isinstance(value, kinds)):
            wanted = " or ".join(_TYPE_NAMES.get(kind, "a valid integer") for kind in kinds)
            raise TranslationError(f"{field}: Input should be {wanted}", field)
    if not counting and data["max_tokens"] < 0:
        raise TranslationError("max_tokens: Input should be greater than or equal to 0", "max_tokens")
    return data
