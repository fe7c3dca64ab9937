"""Limits on the HTTP layer that uvicorn does not enforce by itself.

`LimitedHttpToolsProtocol` is uvicorn's httptools protocol plus:

- a cap on the request head (request line and headers): over `max_head_bytes` the client gets
  431 and the connection closes, so a 64 MB header never sits in memory;
- a deadline for the head: a client that has not sent a complete head `head_timeout` seconds
  after connecting (or after the first bytes of a later request on the connection) gets 408 and is closed;
- a deadline for the body: a body not complete `body_timeout` seconds after its head (a slow
  client, or a Content-Length longer than the body) gets 408 if no response has started, and the
  connection closes either way.

Deadlines are timestamps on the connection, checked by one sweep per process every SWEEP_EVERY of
the shortest timeout (a second at most), not a timer per request: arming one and cancelling it took
a heap operation each and an allocation a request.  A deadline therefore fires up to that much late.

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

SWEEP_EVERY = 0.25  # of the shortest timeout: how late a deadline may fire
HEAD_LATE = "The request head was not received in time."
BODY_LATE = "The request body was not received in time."


def _refusal(status: int, message: str) -> bytes:
    """A complete response that closes the connection, with an error body in Anthropic's shape."""
    body = anthropic_error_body("invalid_request_error", message, None)
    return b"".join([STATUS_LINE[status], b"content-type: application/json\r\n",
                     b"content-length: ", str(len(body)).encode(), b"\r\n", b"connection: close\r\n\r\n", body])


class DeadlineSweep:
    """The connections of one event loop, their deadlines checked every `interval` seconds."""

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        self.loop = loop
        self.interval = interval
        self.connections: set[LimitedHttpToolsProtocol] = set()
        self._handle: asyncio.TimerHandle | None = None

    def add(self, connection: LimitedHttpToolsProtocol) -> None:
        self.connections.add(connection)
        if self._handle is None:
            self._handle = self.loop.call_later(self.interval, self._sweep)

    def discard(self, connection: LimitedHttpToolsProtocol) -> None:
        self.connections.discard(connection)

    def _sweep(self) -> None:
        now = self.loop.time()
        late = [each for each in self.connections if each.expires_at is not None and each.expires_at <= now]
        for connection in late:
            connection.expire()
        self._handle = self.loop.call_later(self.interval, self._sweep) if self.connections else None


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a head size cap and head and body deadlines."""

    limits = http_limits_from_env()
    sweep: DeadlineSweep | None = None  # one per process (per event loop)
    expires_at: float | None = None  # when the head or body now awaited is late (loop time)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_bytes = 0
        self._in_body = False
        self.expires_at, self._late = self.loop.time() + self.limits.head_timeout, HEAD_LATE
        sweep = LimitedHttpToolsProtocol.sweep
        if sweep is None or sweep.loop is not self.loop:
            interval = min(SWEEP_EVERY * min(self.limits.head_timeout, self.limits.body_timeout), 1.0)
            sweep = LimitedHttpToolsProtocol.sweep = DeadlineSweep(self.loop, interval)
        sweep.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.expires_at = None
        if LimitedHttpToolsProtocol.sweep is not None:
            LimitedHttpToolsProtocol.sweep.discard(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Feed uvicorn's parser, then tell from what it made which part of a request these bytes were:
        a head that completed (a new cycle), more of a body, or part of a head not complete yet.  (Read
        here, once a chunk, rather than in the parser's four callbacks, once each a request.)"""
        previous = self.cycle
        super().data_received(data)
        cycle = self.cycle
        if cycle is not previous:  # a head completed: its body, if any, is due within body_timeout
            self._head_bytes = 0
            self._in_body = cycle is not None and cycle.more_body
            self.expires_at = self.loop.time() + self.limits.body_timeout if self._in_body else None
            self._late = BODY_LATE
        elif self._in_body:
            if cycle is None or not cycle.more_body:
                self._in_body, self.expires_at = False, None
        else:  # part of a head
            self._head_bytes += len(data)
            if self.expires_at is None:
                self.expires_at, self._late = self.loop.time() + self.limits.head_timeout, HEAD_LATE
            if self._head_bytes > self.limits.max_head_bytes and not self.transport.is_closing():
                self._refuse(431, f"The request head is larger than {self.limits.max_head_bytes} bytes.")

    def expire(self) -> None:
        """The deadline passed: 408 if no response has started, else just close."""
        self.expires_at = None
        cycle = self.cycle
        if cycle is not None and cycle.response_started:
            self.transport.close()
        else:
            self._refuse(408, self._late)

    def _refuse(self, status: int, message: str) -> None:
        """Answer `status` and close, telling a running request handler its client is gone."""
        self.expires_at = None
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.response_complete = True  # the handler's own response, if any, is dropped
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.transport.write(_refusal(status, message))
        self.transport.close()
