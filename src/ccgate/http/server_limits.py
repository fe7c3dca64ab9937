"""Limits on the HTTP layer that uvicorn does not enforce by itself.

`LimitedHttpToolsProtocol` is uvicorn's httptools protocol plus:

- a cap on the request head (request line and headers): over `max_head_bytes` the client gets
  431 and the connection closes, so a 64 MB header never sits in memory;
- a deadline for the head: a client that has not sent a complete head `head_timeout` seconds
  after connecting (or after its request began) gets 408 and is closed;
- a deadline for the body: a body not complete `body_timeout` seconds after its head (a slow
  client, or a Content-Length longer than the body) gets 408 if no response has started, and the
  connection closes either way.

The connection cap per process is uvicorn's own `limit_concurrency` (503 over it), set from
`HttpLimits.max_connections`.  Limits come from the environment (`HttpLimits.from_env`), read
once per process, so every worker of `serve --workers N` applies the same ones.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from ccgate.dialects.errors import anthropic_error_body


@dataclass(frozen=True)
class HttpLimits:
    """The HTTP layer's limits (seconds, bytes, connections)."""

    head_timeout: float = 10.0
    body_timeout: float = 60.0
    max_head_bytes: int = 64 * 1024
    max_connections: int = 1000

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> HttpLimits:
        """Limits from CCGATE_HTTP_HEAD_TIMEOUT, CCGATE_HTTP_BODY_TIMEOUT, CCGATE_HTTP_MAX_HEADER_BYTES and
        CCGATE_HTTP_MAX_CONNECTIONS; raises ValueError naming the variable when one is malformed."""
        defaults = cls()
        return cls(
            head_timeout=_positive("CCGATE_HTTP_HEAD_TIMEOUT", env, defaults.head_timeout, float),
            body_timeout=_positive("CCGATE_HTTP_BODY_TIMEOUT", env, defaults.body_timeout, float),
            max_head_bytes=int(_positive("CCGATE_HTTP_MAX_HEADER_BYTES", env, defaults.max_head_bytes, int)),
            max_connections=int(_positive("CCGATE_HTTP_MAX_CONNECTIONS", env, defaults.max_connections, int)),
        )


def _positive(name: str, env: Mapping[str, str], default: float, kind: type[int] | type[float]) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = kind(raw.strip())
    except ValueError:
        value = 0
    if not value > 0 or value == float("inf"):
        noun = "a positive whole number" if kind is int else "a positive number of seconds"
        raise ValueError(f"{name}={raw!r}: expected {noun}")
    return value


def _refusal(status: int, message: str) -> bytes:
    """A complete response that closes the connection, with an error body in Anthropic's shape."""
    body = anthropic_error_body("invalid_request_error", message, None)
    return b"".join([STATUS_LINE[status], b"content-type: application/json\r\n",
                     b"content-length: ", str(len(body)).encode(), b"\r\n", b"connection: close\r\n\r\n", body])


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a head size cap and head and body deadlines."""

    limits = HttpLimits.from_env()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_bytes = 0
        self._reading_head = True
        self._deadline: asyncio.TimerHandle | None = None
        self._arm(self.limits.head_timeout, "The request head was not received in time.")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._reading_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._reading_head and self._head_bytes > self.limits.max_head_bytes and not self.transport.is_closing():
            self._refuse(431, f"The request head is larger than {self.limits.max_head_bytes} bytes.")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_head = True
        self._head_bytes = 0
        if self._deadline is None:
            self._arm(self.limits.head_timeout, "The request head was not received in time.")

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._disarm()
        super().on_headers_complete()
        if not self.transport.is_closing():
            self._arm(self.limits.body_timeout, "The request body was not received in time.")

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _arm(self, seconds: float, message: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expire, message)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self, message: str) -> None:
        self._deadline = None
        cycle = self.cycle
        if cycle is not None and cycle.response_started:
            self.transport.close()
        else:
            self._refuse(408, message)

    def _refuse(self, status: int, message: str) -> None:
        """Answer `status` and close, telling a running request handler its client is gone."""
        self._disarm()
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.response_complete = True  # the handler's own response, if any, is dropped
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.transport.write(_refusal(status, message))
        self.transport.close()
