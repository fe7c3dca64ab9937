"""Issue 16: a real nginx, configured with exactly the blocks docs/deploy.md shows, in front of a gateway.

The `upstream` and `location` blocks are read from the guide's nginx example, so the guide and this test
cannot drift apart; only the upstream's address is pointed at the test gateway.  The simulator paces its
tokens, so a stream that nginx buffered would arrive all at once at the end.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest

from harness import Gateway, Simulator, free_port, stop_process, wait_for_port

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "deploy.md"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
TOKENS_PER_SEC = 40
SDK_ENCODINGS = "gzip, deflate"  # what the Python SDKs accept, so a compressing proxy would compress
REPLY_TOKENS = 24  # paced at TOKENS_PER_SEC: the stream lasts about 0.6 s


def braced_block(text: str, opening: str) -> str:
    """The block that starts at the first `opening` (which ends with "{"), through its closing brace."""
    start = text.index(opening)
    depth = 0
    for position in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[position], 0)
        if depth == 0 and text[position] == "}":
            return text[start:position + 1]
    raise ValueError(f"unbalanced block {opening!r}")


def documented_nginx_config() -> str:
    """The guide's nginx example, the one ```nginx block of docs/deploy.md."""
    [config] = re.findall(r"```nginx\n(.*?)```", GUIDE.read_text(), re.S)
    return config


def nginx_config_for(documented: str, gateway_port: int, listen_port: int, directory: Path) -> str:
    """A foreground nginx in `directory` serving the documented upstream and location blocks on loopback."""
    upstream = braced_block(documented, "upstream ccgate {")
    assert "server 127.0.0.1:8080;" in upstream
    upstream = upstream.replace("server 127.0.0.1:8080;", f"server 127.0.0.1:{gateway_port};")
    location = braced_block(documented, "location / {")
    temp_paths = "\n".join(f"    {kind}_temp_path {directory / kind};"
                           for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""
daemon off;
master_process off;
pid {directory / "nginx.pid"};
error_log {directory / "error.log"} warn;
events {{ worker_connections 64; }}
http {{
    access_log {directory / "access.log"};
{temp_paths}
{upstream}
    server {{
        listen 127.0.0.1:{listen_port};
        {location}
    }}
}}
"""


@pytest.fixture(scope="module")
def paced_sim():
    simulator = Simulator().start("--tokens-per-sec", str(TOKENS_PER_SEC))
    yield simulator
    simulator.stop()


@pytest.fixture(scope="module")
def proxied(paced_sim, tmp_path_factory) -> Iterator[tuple[str, int]]:
    """(a key of the gateway, the port nginx listens on in front of it)."""
    if not Path(NGINX).exists():
        pytest.skip("nginx is not installed (Debian: apt-get install nginx)")
    gateway = Gateway(tmp_path_factory.mktemp("behind-nginx"),
                      extra_env={"CCGATE_TRUSTED_PROXIES": "127.0.0.1"})
    gateway.add_account("sim-paced", "sk-ant-sim-paced", paced_sim.url)
    gateway.start()
    key = gateway.new_key("behind-nginx@example.com")
    directory = tmp_path_factory.mktemp("nginx")
    port = free_port()
    config = directory / "nginx.conf"
    config.write_text(nginx_config_for(documented_nginx_config(), gateway.port, port, directory))
    nginx = subprocess.Popen([NGINX, "-p", str(directory), "-e", str(directory / "error.log"), "-c", str(config)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, nginx, timeout=10)
    except RuntimeError:
        pytest.fail(f"nginx did not start: {nginx.stderr.read().decode()}")
    yield key, port
    stop_process(nginx)
    gateway.stop()


def timed_events(port: int, path: str, headers: dict, body: dict) -> tuple[list[float], list[bytes], float]:
    """POST through nginx and read the answer line by line: (seconds after sending at which each `data:` line
    arrived, those lines, seconds until the stream ended)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    started = time.monotonic()
    connection.request("POST", path, json.dumps(body).encode(),
                       {"content-type": "application/json", "accept-encoding": SDK_ENCODINGS, **headers})
    response = connection.getresponse()
    assert response.status == 200, response.read()
    assert response.getheader("content-type", "").startswith("text/event-stream")
    assert response.getheader("content-encoding") is None, "a compressed stream is held back by the compressor"
    arrivals, lines = [], []
    while line := response.readline():
        if line.startswith(b"data:"):
            arrivals.append(time.monotonic() - started)
            lines.append(line)
    ended = time.monotonic() - started
    connection.close()
    return arrivals, lines, ended


def assert_incremental(arrivals: list[float], ended: float) -> None:
    paced = REPLY_TOKENS / TOKENS_PER_SEC
    assert len(arrivals) >= 5
    assert arrivals[-1] - arrivals[0] > paced / 2, f"events arrived together: {arrivals}"
    assert arrivals[0] < ended - paced / 2, f"the first event waited for the end: {arrivals[0]:.2f}s of {ended:.2f}s"


def prompt() -> list[dict]:
    return [{"role": "user", "content": f"[[sim:tokens={REPLY_TOKENS}]] tell me something"}]


def test_nginx_config_is_the_documented_one_with_buffering_off():
    location = braced_block(documented_nginx_config(), "location / {")
    for directive in ("proxy_buffering off;", "gzip off;", "proxy_read_timeout 900s;", "proxy_http_version 1.1;",
                      "X-Forwarded-For $proxy_add_x_forwarded_for;", "X-Forwarded-Proto $scheme;"):
        assert directive in location


def test_anthropic_stream_arrives_event_by_event_through_nginx(proxied):
    key, port = proxied
    arrivals, lines, ended = timed_events(
        port, "/v1/messages", {"x-api-key": key, "anthropic-version": "2023-06-01"},
        {"model": "claude-haiku-4-5", "max_tokens": 100, "stream": True, "messages": prompt()})
    assert_incremental(arrivals, ended)
    assert b'"message_stop"' in lines[-1]
    assert sum(b"text_delta" in line for line in lines) >= 5


def test_openai_stream_arrives_chunk_by_chunk_through_nginx(proxied):
    key, port = proxied
    arrivals, lines, ended = timed_events(
        port, "/v1/chat/completions", {"authorization": f"Bearer {key}"},
        {"model": "claude-haiku-4-5", "max_tokens": 100, "stream": True, "messages": prompt()})
    assert_incremental(arrivals[:-1], ended)  # the last line is `data: [DONE]`
    assert lines[-1].strip() == b"data: [DONE]"


def test_a_non_streaming_call_works_through_nginx(proxied):
    key, port = proxied
    client = anthropic.Anthropic(api_key=key, base_url=f"http://127.0.0.1:{port}", max_retries=0)
    message = client.messages.create(model="claude-haiku-4-5", max_tokens=100, messages=prompt())
    assert message.usage.output_tokens == REPLY_TOKENS and message.content[0].text
