"""The access log: one line per finished request, written by a thread off the event loop.

A line carries ids, counts, costs and times (see `RequestRecord`): never a key, a credential, a
prompt or a completion. The request path only appends the record to a deque (well under a
microsecond more than building it); the writer thread wakes every FLUSH_SECONDS, not per request
(a wake per request cost a context switch and a GIL hand-off each under load), and formats and
writes what has gathered.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import attrgetter
from typing import IO

import orjson

from ccgate.obs.record import RequestRecord

FLUSH_SECONDS = 0.1  # how far the file may trail the requests
FIELDS = ("request_id", "key_id", "user_id", "session_id", "route", "dialect", "model", "account", "status",
          "error_type", "refusal", "stream", "input_tokens", "output_tokens", "cache_read_tokens",
          "cache_write_5m_tokens", "cache_write_1h_tokens", "cost_micro", "cache")


_values_of = attrgetter(*FIELDS)


class Clock:
    """Timestamps to the millisecond in ISO 8601, UTC: the date and time of day made once a second."""

    def __init__(self) -> None:
        self._second, self._prefix = -1, ""

    def now(self) -> str:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._prefix}.{int((now - second) * 1000):03d}+00:00"


def access_fields(record: RequestRecord, clock: Clock | None = None) -> dict[str, object]:
    """The fields of one access-log line, in a stable order."""
    fields: dict[str, object] = {"ts": (clock or Clock()).now()}
    fields.update(zip(FIELDS, _values_of(record), strict=True))
    fields["added_ms"] = round(record.added_seconds * 1000, 3)
    fields["upstream_ms"] = round(record.upstream_seconds * 1000, 3)
    fields["total_ms"] = round(record.total_seconds * 1000, 3)
    fields["attempts"] = len(record.attempts)
    return fields


def format_line(record: RequestRecord, fmt: str, clock: Clock | None = None) -> bytes:
    """One line, JSON or `key=value` text."""
    fields = access_fields(record, clock)
    if fmt == "text":
        return " ".join(f"{name}={value}" for name, value in fields.items() if value is not None).encode() + b"\n"
    return orjson.dumps(fields) + b"\n"


@dataclass(frozen=True, slots=True)
class AccessLogSettings:
    target: str = "off"  # off, stdout, or a file path
    fmt: str = "json"
    level: str = "INFO"


class AccessLog:
    """Queue of finished requests and the thread that writes them; `write` is what the hot path calls."""

    def __init__(self, settings: AccessLogSettings) -> None:
        self.settings = settings
        self.enabled = settings.target.lower() != "off"
        level = logging.getLevelName(settings.level.upper())
        self._errors_only = isinstance(level, int) and level >= logging.WARNING
        self._pending: deque[RequestRecord] = deque()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._stream: IO[bytes] | None = None

    def start(self) -> None:
        if not self.enabled or self._thread is not None:
            return
        target = self.settings.target
        self._stopping.clear()
        self._stream = sys.stdout.buffer if target.lower() == "stdout" else open(target, "ab")  # noqa: SIM115
        self._thread = threading.Thread(target=self._drain, name="access-log", daemon=True)
        self._thread.start()

    def write(self, record: RequestRecord) -> None:
        """Log one finished request (returns at once)."""
        if self.enabled and not (self._errors_only and record.status < 400):
            self._pending.append(record)

    def stop(self) -> None:
        """Write what is queued, then stop the thread and close the file."""
        if self._thread is None:
            return
        self._stopping.set()
        self._thread.join(timeout=5)
        self._thread = None
        if self._stream is not None and self._stream is not sys.stdout.buffer:
            self._stream.close()
        self._stream = None

    def _drain(self) -> None:
        stream, fmt, pending, clock = self._stream, self.settings.fmt, self._pending, Clock()
        assert stream is not None
        while True:
            stopping = self._stopping.wait(FLUSH_SECONDS)
            lines = []
            while pending:
                lines.append(format_line(pending.popleft(), fmt, clock))
            if lines:
                stream.write(b"".join(lines))
                stream.flush()
            if stopping:
                return


class JsonFormatter(logging.Formatter):
    """Application log records as JSON lines (time, level, logger, message)."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {"ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                  "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(fields).decode()


def configure_logging(fmt: str, level: str) -> None:
    """The application's own log (the `ccgate` loggers) at `level`, in JSON or plain text, on stderr."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("ccgate")
    for old in list(logger.handlers):
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
