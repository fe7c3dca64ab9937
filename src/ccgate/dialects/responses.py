"""The OpenAI Responses dialect: each Anthropic answer as a Response, whole or as Responses stream events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from ccgate.dialects.anthropic_stream import MessageBuilder
from ccgate.dialects.errors import openai_error_body
from ccgate.dialects.responses_response import failed, to_response
from ccgate.dialects.responses_stream import ResponseEventTranslator, encode
from ccgate.dialects.sse import event_data, event_name

Json = dict[str, Any]
KEEP_ALIVE = b": keep-alive\n\n"


class ResponsesDialect:
    """Translates each Anthropic answer into a Response, whole or as Responses stream events.

    Once an answer is complete, `finished` holds (Anthropic message, Response) and `on_finish` is called.
    """

    name = "responses"

    def __init__(self) -> None:
        self.frame: Json = {}
        self.translator: ResponseEventTranslator | None = None
        self.builder = MessageBuilder()
        self.finished: tuple[Json, Json] | None = None
        self.on_finish: Callable[[], None] = lambda: None
        self.on_fail: Callable[[Json], None] = lambda response: None

    def begin(self, frame: Json) -> None:
        self.frame = frame
        self.translator = ResponseEventTranslator(frame)

    def _finish(self, message: Json, response: Json) -> None:
        self.finished = (message, response)
        self.on_finish()

    def answer(self, raw: bytes, message: Json) -> bytes:
        response = to_response(message, self.frame)
        self._finish(message, response)
        return orjson.dumps(response)

    def stream_chunk(self, raw: bytes, blocks: list[bytes]) -> bytes:
        assert self.translator is not None
        out = []
        for block in blocks:
            if event_name(block) == b"ping":  # upstream is thinking: keep the client's connection warm
                out.append(KEEP_ALIVE)
                continue
            if not (data := event_data(block)):
                continue
            event = orjson.loads(data)
            self.builder.feed(event)
            out.extend(encode(translated) for translated in self.translator.feed(event))
            if event.get("type") == "message_stop" and self.translator.response and self.builder.message:
                self._finish(self.builder.message, self.translator.response)
            elif event.get("type") == "error" and self.translator.response:
                self.on_fail(self.translator.response)
        return b"".join(out)

    def stream_error(self, error_type: str, message: str) -> bytes:
        translator = self.translator or ResponseEventTranslator(self.frame)
        events = translator.fail(error_type, message)
        self.on_fail(events[-1]["response"])
        return b"".join(encode(event) for event in events)

    def stream_end(self) -> bytes:
        return b""

    def upstream_error(self, status: int, raw: bytes) -> bytes:
        """Anthropic's error, re-spoken in OpenAI's envelope with the same type and message."""
        try:
            error = orjson.loads(raw)["error"]
            error_type, message = str(error["type"]), str(error["message"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            error_type, message = "api_error", f"upstream answered HTTP {status}"
        self.on_fail(failed(self.frame, self.frame.get("model") or "", [], error_type, message))
        return openai_error_body(error_type, message)
