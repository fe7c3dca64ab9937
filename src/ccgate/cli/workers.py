"""`serve --workers N`: uvicorn's supervisor of worker processes, with the metrics told about them.

Prometheus metrics of several processes are summed from files in one directory (prometheus-client's
multiprocess mode). The directory is made empty and named in PROMETHEUS_MULTIPROC_DIR before any
worker starts: workers are spawned fresh and inherit it before they import prometheus-client. When a
worker dies (uvicorn then starts another), its live gauges are dropped; its counters stay in the sums.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from uvicorn import Config
from uvicorn.supervisors import Multiprocess

from ccgate.obs.metrics import prepare_multiprocess_dir, worker_exited


class MetricsSupervisor(Multiprocess):
    """uvicorn's Multiprocess, calling obs.metrics.worker_exited for each worker it replaced or retired."""

    def _pids(self) -> set[int]:
        return {process.pid for process in self.processes if process.pid is not None}

    def _forget_gone(self, before: set[int]) -> None:
        for pid in sorted(before - self._pids()):
            worker_exited(pid)

    def keep_subprocess_alive(self) -> None:
        before = self._pids()
        super().keep_subprocess_alive()
        self._forget_gone(before)

    def restart_all(self) -> None:
        before = self._pids()
        super().restart_all()
        self._forget_gone(before)

    def handle_ttou(self) -> None:
        before = self._pids()
        super().handle_ttou()
        self._forget_gone(before)


def run_workers(app: str, workers: int, metrics_dir: Path, options: dict[str, Any]) -> None:
    """Serve the app factory `app` ("module:function") in `workers` processes sharing one socket."""
    prepare_multiprocess_dir(metrics_dir)
    config = Config(app, factory=True, workers=workers, **options)
    sock = config.bind_socket()
    try:
        MetricsSupervisor(config, sockets=[sock]).run()
    finally:
        sock.close()
