"""The one object the request path talks to when a request ends: metrics, access log and trace."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from ccgate.obs import metrics
from ccgate.obs.access_log import AccessLog, AccessLogSettings, configure_logging
from ccgate.obs.record import RequestRecord
from ccgate.obs.tracing import Tracing


class Observer:
    """Built once per process (`from_settings`), started and stopped by the lifespan."""

    def __init__(self, access_log: AccessLog, tracing: Tracing) -> None:
        self.access_log = access_log
        self.tracing = tracing
        self._flusher: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(cls, access_log: str, log_format: str, log_level: str, user_labels: bool) -> Observer:
        """From CCGATE_ACCESS_LOG, CCGATE_LOG_FORMAT, CCGATE_LOG_LEVEL, CCGATE_METRICS_USER_LABELS and OTEL_*."""
        configure_logging(log_format, log_level)
        metrics.set_user_labels(user_labels)
        return cls(AccessLog(AccessLogSettings(access_log, log_format, log_level)), Tracing.from_env())

    def start(self) -> None:
        """In the running event loop: the access-log writer thread and the metrics flush task."""
        self.access_log.start()
        self._flusher = asyncio.get_running_loop().create_task(metrics.flush_loop(), name="metrics-flush")

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        metrics.flush()
        self.access_log.stop()
        self.tracing.shutdown()

    def finished(self, record: RequestRecord, span: Any = None, response_model: str | None = None) -> None:
        """A request is over (answered, refused or failed): count it, log it, end its trace span."""
        metrics.observe_request(record)
        if self.access_log.enabled:
            self.access_log.write(record)
        if span is not None:
            self.tracing.end_request(span, record, response_model)
