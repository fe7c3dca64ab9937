"""What the simulator saw: the last requests on /v1/* and running counters, for tests."""

from __future__ import annotations

import base64
from collections import Counter, deque
from typing import Any

from aiohttp import web
from multidict import CIMultiDictProxy


class Recorder:
    """A bounded log of /v1 requests plus request and stream counters."""

    def __init__(self, limit: int) -> None:
        self._log: deque[tuple[str, str, str, CIMultiDictProxy[str], bytes, str | None]] = deque(maxlen=limit)
        self.by_path: Counter[str] = Counter()
        self.by_key: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.open_streams = 0
        self.completed_streams = 0
        self.cancelled_streams = 0

    def record(self, request: web.Request, body: bytes, api_key: str | None) -> None:
        """Remember one request (rendered to JSON only when asked for)."""
        self._log.append((request.method, request.path, request.query_string, request.headers, body, api_key))
        self.by_path[request.path] += 1
        if api_key is not None:
            self.by_key[api_key] += 1

    def clear(self) -> None:
        """Forget the log and every counter except the live open_streams."""
        self._log.clear()
        for counter in (self.by_path, self.by_key, self.faults):
            counter.clear()
        self.completed_streams = self.cancelled_streams = 0

    def requests(self) -> list[dict[str, Any]]:
        """The log as JSON-ready dicts, oldest first."""
        return [
            {"method": method, "path": path, "query": query, "api_key": api_key,
             "headers": {name.lower(): ", ".join(headers.getall(name)) for name in headers.keys()},
             "body_b64": base64.b64encode(body).decode()}
            for method, path, query, headers, body, api_key in self._log
        ]

    def stats(self) -> dict[str, Any]:
        """Counters as JSON-ready dict."""
        return {"requests": sum(self.by_path.values()), "by_path": dict(self.by_path), "by_key": dict(self.by_key),
                "faults": dict(self.faults), "open_streams": self.open_streams,
                "completed_streams": self.completed_streams, "cancelled_streams": self.cancelled_streams}
