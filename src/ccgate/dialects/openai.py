"""The OpenAI Chat Completions dialect: each Anthropic answer translated, event by event."""

from __future__ import annotations

import time
from typing import Any

import orjson

from ccgate.dialects.errors import openai_error_body, openai_error_object
from ccgate.dialects.openai_response import to_openai_response
from ccgate.dialects.openai_stream import DONE, KEEP_ALIVE, ChunkTranslator, encode
from ccgate.dialects.sse import event_data, event_name


class OpenAIDialect:
    """Translates each Anthropic answer, event by event, into Chat Completions."""

    name = "openai"

    def __init__(self) -> None:
        self.created = int(time.time())
        self.translator = ChunkTranslator(created=self.created, include_usage=False)

    def expect_usage_chunk(self, include_usage: bool) -> None:
        self.translator = ChunkTranslator(created=self.created, include_usage=include_usage)

    def answer(self, raw: bytes, message: dict[str, Any]) -> bytes:
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
