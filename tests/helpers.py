"""HTTP helpers the end-to-end tests share: curl-shaped requests, usage lookups, request bodies."""

from __future__ import annotations

import base64
import json
import math
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ccgate.billing.prices import ModelPrice, Usage, cost_micro
from ccgate.dialects.models import reference_by_name
from harness import free_port, stop_process, wait_for_port

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


def last_upstream_body(sim) -> dict:
    """The JSON body of the last request the simulator received."""
    return json.loads(base64.b64decode(sim.requests()[-1]["body_b64"]))


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


def slow(ms: int) -> str:
    """Prompt directives that make the simulator wait before answering (client headers do not reach it)."""
    return f"[[sim:fault=slow-first-byte]][[sim:delay_ms={ms}]]"


def key_status(gateway, key: str) -> dict:
    status, _, payload = raw(gateway, "GET", "/v1/key-status", headers={"x-api-key": key})
    assert status == 200, payload
    return payload


class FormSession:
    """A signed-in browser without a browser: cookies kept, each form posted with its page's CSRF token;
    a refused form's page (4xx) is returned like any other."""

    def __init__(self, base_url: str) -> None:
        import http.cookiejar

        self.base_url = base_url
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def open(self, request: urllib.request.Request | str) -> tuple[int, dict, str]:
        if isinstance(request, str):
            request = urllib.request.Request(self.base_url + request)
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, dict(response.headers), response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read().decode()

    def post_form(self, path: str, page: str, form: dict[str, str]) -> tuple[int, dict, str]:
        import re
        import urllib.parse

        csrf = re.search(r'name="csrf" value="([^"]+)"', self.open(page)[2]).group(1)
        data = urllib.parse.urlencode({"csrf": csrf, **form}).encode()
        return self.open(urllib.request.Request(self.base_url + path, data=data))


def catalog_price(model_id: str, **modifiers: int) -> ModelPrice:
    """The reference catalog's prices of a model, as the gateway seeds them."""
    spec = reference_by_name()[model_id]
    micro = lambda usd: round(usd * 1_000_000)  # noqa: E731
    return ModelPrice(spec.id, spec.display_name, spec.created_at, spec.max_input_tokens, spec.max_tokens,
                      micro(spec.input_price), micro(spec.output_price), micro(spec.cache_write_5m_price),
                      micro(spec.cache_write_1h_price), micro(spec.cache_read_price), **modifiers)


def old_worst_case_hold(body_size: int, model: ModelPrice, max_tokens: int) -> int:
    """What admission held before issue 13 (for before/after comparisons): every body byte a token plus
    1,000, each at the 1-hour cache-write price, and all of max_tokens."""
    bound = min(body_size, model.max_input_tokens) + 1000
    return cost_micro(model, Usage(cache_write_1h_tokens=bound, output_tokens=max_tokens))


# -- a throwaway redis-server ------------------------------------------------------------------

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


@dataclass
class RedisServer:
    """A throwaway redis-server on a free loopback port, persisting nothing."""

    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, self.process)
        return self

    def stop(self) -> None:
        stop_process(self.process)


def started_redis(directory: Path) -> RedisServer:
    """A running server, or a skip (a failure under CI) when redis-server is not installed."""
    if not os.path.exists(REDIS_SERVER):
        message = f"redis-server not found at {REDIS_SERVER}: install it (Debian: apt-get install redis-server)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return RedisServer(directory).start()


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


# -- the real Claude Code CLI ------------------------------------------------------------------------

CLAUDE = Path(__file__).resolve().parent.parent / ".tools" / "node_modules" / ".bin" / "claude"


def claude_code() -> Path:
    """The Claude Code binary scripts/test.sh installs into .tools/; a skip where it is missing, a failure in CI."""
    if not CLAUDE.exists():
        if os.environ.get("CI"):
            pytest.fail("Claude Code is not installed in .tools (scripts/test.sh installs it with npm)")
        pytest.skip("Claude Code is not installed in .tools; scripts/test.sh installs it with npm")
    return CLAUDE


# -- what admission held (the gateway logs it at debug level: run it with CCGATE_LOG_LEVEL=DEBUG) ------

ADMITTED = re.compile(r"admitted (\S+): body (\d+) bytes, max_tokens (\d+), hold (\d+|None) micro-USD")


@dataclass(frozen=True)
class Admission:
    body_bytes: int
    max_tokens: int
    hold_micro: int | None


def admissions(log: Path) -> dict[str, Admission]:
    """Each admitted request's body size, max_tokens and hold, by request id, from a gateway's log."""
    return {request_id: Admission(int(size), int(tokens), None if hold == "None" else int(hold))
            for request_id, size, tokens, hold in ADMITTED.findall(log.read_text())}
