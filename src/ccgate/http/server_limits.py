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
`HttpLimits.max_connections`.  Limits come from the environment (ccgate.config.http_limits_from_env:
CCGATE_HTTP_HEAD_TIMEOUT, CCGATE_HTTP_BODY_TIMEOUT, CCGATE_HTTP_MAX_HEADER_BYTES,
CCGATE_HTTP_MAX_CONNECTIONS), read once per process, so every worker of `serve --workers N`
applies the same ones.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from ccgate.config import http_limits_from_env
from ccgate.dialects.errors import anthropic_error_body


def _refusal(status: int, message: str) -> bytes:
    """A complete response that closes the connection, with an error body in Anthropic's shape."""
    body = anthropic_error_body("invalid_request_error", message, None)
    return b"".join([STATUS_LINE[status], b"content-type: application/json\r\n",
                     b"content-length: ", str(len(body)).encode(), b"\r\n", b"connection: close\r\n\r\n", body])


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a head size cap and head and body deadlines."""

    limits = http_limits_from_env()

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
