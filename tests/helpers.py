"""HTTP helpers the end-to-end tests share: curl-shaped requests, usage lookups, request bodies."""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from pathlib import Path

from ccgate.dialects.models import reference_by_name

CHROMIUM = Path("/usr/bin/chromium")  # Debian's, driven by Playwright
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

PNG_1X1 = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def list_price_micro(model: str, usage: dict) -> int:
    """The cost the reference price table gives, computed independently of ccgate's billing code."""
    spec = reference_by_name()[model]
    creation = usage.get("cache_creation") or {}
    dollars_times_million = (
        usage["input_tokens"] * spec.input_price
        + usage["output_tokens"] * spec.output_price
        + (usage.get("cache_read_input_tokens") or 0) * spec.cache_read_price
        + (creation.get("ephemeral_5m_input_tokens") or 0) * spec.cache_write_5m_price
        + (creation.get("ephemeral_1h_input_tokens") or 0) * spec.cache_write_1h_price
    )
    return math.ceil(round(dollars_times_million, 6))


def raw(gateway, method: str, path: str, *, body: bytes | None = None, headers: dict | None = None):
    """A curl-shaped request: (status, headers, parsed JSON body or raw bytes)."""
    request = urllib.request.Request(gateway.url + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, response_headers, payload = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, response_headers, payload = error.code, error.headers, error.read()
    try:
        return status, response_headers, json.loads(payload)
    except ValueError:
        return status, response_headers, payload


def usage_of(gateway, key: str, request_id: str) -> dict:
    status, _, payload = raw(gateway, "GET", f"/v1/usage/{request_id}", headers={"x-api-key": key})
    assert status == 200, payload
    return payload


PROMPT = [{"role": "user", "content": "hi"}]


def message_body(model: str = "claude-haiku-4-5", max_tokens: int = 16, text: str = "hi", **extra) -> bytes:
    return json.dumps({"model": model, "max_tokens": max_tokens,
                       "messages": [{"role": "user", "content": text}], **extra}).encode()


def post(gateway, key: str, body: bytes, **headers):
    return raw(gateway, "POST", "/v1/messages", body=body,
               headers={"x-api-key": key, "content-type": "application/json", **headers})


def slow(ms: int) -> dict:
    """Headers that make the simulator wait before answering (the gateway forwards them)."""
    return {"x-sim-fault": "slow-first-byte", "x-sim-delay-ms": str(ms)}


def key_status(gateway, key: str) -> dict:
    status, _, payload = raw(gateway, "GET", "/v1/key-status", headers={"x-api-key": key})
    assert status == 200, payload
    return payload


class Receiver:
    """An HTTP server on 127.0.0.1 that answers 200 to every POST and keeps (path, headers, body) of each."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        received = self.received = []
        self._lock = lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    received.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def bodies(self, path: str | None = None) -> list[tuple[dict, bytes]]:
        with self._lock:
            return [(headers, body) for got, headers, body in self.received if path is None or got == path]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def scrape(gateway) -> dict[tuple[str, frozenset], float]:
    """/metrics as {(sample name, labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(gateway.url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def series_sum(samples: dict[tuple[str, frozenset], float], name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(value for (sample, have), value in samples.items() if sample == name and wanted <= have)
