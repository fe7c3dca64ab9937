"""Issue 14 item 4: limits on the HTTP layer, tried with raw sockets, and JSON errors for unknown API paths."""

from __future__ import annotations

import json
import time

import pytest

from ccgate.config import SettingsError, http_limits_from_env
from harness import Gateway
from rawhttp import body_of, connect, exchange, read_response
from test_messages import raw

TIGHT = {"CCGATE_HTTP_HEAD_TIMEOUT": "1", "CCGATE_HTTP_BODY_TIMEOUT": "1", "CCGATE_HTTP_MAX_CONNECTIONS": "30"}


@pytest.fixture(scope="module")
def tight(sim, tmp_path_factory):
    """A gateway with one-second head and body deadlines and room for 30 connections."""
    gateway = Gateway(tmp_path_factory.mktemp("tight-gateway"), extra_env=TIGHT)
    gateway.add_account("sim", "sk-ant-tight", sim.url)
    gateway.start()
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def tight_key(tight) -> str:
    return tight.new_key("http-limits@example.com")


@pytest.fixture(scope="module")
def key(gateway) -> str:
    """One key for the module's requests to the shared gateway (creating keys is the slow part)."""
    return gateway.new_key("http-limits-shared@example.com")


def test_a_huge_header_gets_431_and_the_connection_closes(tight):
    with connect(tight.port) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: ")
        sent = 0
        try:
            while sent < 16 * 1024 * 1024:
                sock.sendall(b"a" * 65536)
                sent += 65536
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, data, _ = read_response(sock)
    assert status == 431, data[:200]
    assert sent < 4 * 1024 * 1024, "the server stopped reading long before 16 MB"
    assert json.loads(body_of(data))["type"] == "error"


def test_a_partial_request_line_is_answered_408_and_closed(tight):
    with connect(tight.port) as sock:
        sock.sendall(b"GET /v1/mod")
        status, data, waited = read_response(sock)
    assert status == 408 and waited < 5, (data, waited)


def test_a_silent_connection_is_closed(tight):
    with connect(tight.port) as sock:
        status, _, waited = read_response(sock)
    assert status == 408 and waited < 5


def test_a_body_shorter_than_its_content_length_times_out_instead_of_hanging(tight, tight_key):
    key = tight_key
    head = (f"POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: {key}\r\ncontent-type: application/json\r\n"
            f"content-length: 100\r\n\r\n").encode()
    status, data, waited = exchange(tight.port, head + b'{"model":', timeout=10)
    assert status == 408 and waited < 5, (data, waited)


def test_a_slow_streaming_response_is_not_cut_by_the_deadlines(tight, tight_key):
    key = tight_key
    body = json.dumps({"model": "claude-haiku-4-5", "max_tokens": 16, "stream": True, "messages": [
        {"role": "user", "content": "[[sim:fault=slow-first-byte]][[sim:delay_ms=1500]]"}]}).encode()
    status, _, payload = raw(tight, "POST", "/v1/messages", body=body,
                             headers={"x-api-key": key, "content-type": "application/json"})
    assert status == 200 and b"message_stop" in payload


def test_connections_over_the_cap_get_503(tight):
    idle = [connect(tight.port) for _ in range(35)]
    try:
        status, _, _ = exchange(tight.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    finally:
        for sock in idle:
            sock.close()
    assert status == 503
    time.sleep(0.2)
    assert exchange(tight.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[0] == 200


def test_limits_come_from_the_environment_and_refuse_nonsense(monkeypatch):
    monkeypatch.setenv("CCGATE_HTTP_HEAD_TIMEOUT", "2.5")
    assert http_limits_from_env().head_timeout == 2.5
    for bad in ("0", "-1", "soon", "inf"):
        monkeypatch.setenv("CCGATE_HTTP_HEAD_TIMEOUT", bad)
        with pytest.raises(SettingsError, match="CCGATE_HTTP_HEAD_TIMEOUT"):
            http_limits_from_env()


# -- JSON depth -----------------------------------------------------------------------------------

def nested(levels: int) -> object:
    value: object = 1
    for _ in range(levels - 1):
        value = {"x": value} if len(str(levels)) % 2 else [value]
    return value


DEEP_ANTHROPIC = {
    "unknown field": lambda deep: {"some_field": deep},
    "messages[0]": lambda deep: {"messages": [
        {"role": "user", "content": [{"type": "text", "text": "hi", "x": deep}]}]},
    "tool parameters": lambda deep: {"tools": [{"name": "t", "input_schema": {"type": "object", "properties": deep}}]},
}
DEEP_OPENAI = {
    "unknown field": lambda deep: {"some_field": deep},
    "messages[0]": lambda deep: {"messages": [{"role": "user", "content": "hi", "x": deep}]},
    "response_format": lambda deep: {"response_format": {"type": "json_schema", "json_schema": {
        "name": "n", "schema": deep}}},
    "tool parameters": lambda deep: {"tools": [{"type": "function", "function": {"name": "t", "parameters": deep}}]},
}


@pytest.mark.parametrize("where", DEEP_ANTHROPIC)
def test_json_nested_300_deep_is_a_400_in_anthropic_shape(gateway, key, where):
    body = {"model": "claude-haiku-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}],
            **DEEP_ANTHROPIC[where](nested(300))}
    status, _, payload = raw(gateway, "POST", "/v1/messages", body=json.dumps(body).encode(),
                             headers={"x-api-key": key, "content-type": "application/json"})
    assert status == 400 and payload["error"]["type"] == "invalid_request_error", payload
    assert "nested" in payload["error"]["message"]


@pytest.mark.parametrize("where", DEEP_OPENAI)
def test_json_nested_300_deep_is_a_400_in_openai_shape(gateway, key, where):
    body = {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "hi"}],
            **DEEP_OPENAI[where](nested(300))}
    status, _, payload = raw(gateway, "POST", "/v1/chat/completions", body=json.dumps(body).encode(),
                             headers={"authorization": f"Bearer {key}", "content-type": "application/json"})
    assert status == 400 and payload["error"]["type"] == "invalid_request_error", payload
    assert "type" not in payload or payload.get("type") != "error"


def test_json_100_deep_is_still_accepted(gateway, key):
    body = {"model": "claude-haiku-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}],
            "metadata_extra": nested(100)}
    status, _, payload = raw(gateway, "POST", "/v1/messages", body=json.dumps(body).encode(),
                             headers={"x-api-key": key, "content-type": "application/json"})
    assert status != 400 or "nested" not in payload["error"]["message"]
    assert status < 500


# -- unknown paths and wrong methods --------------------------------------------------------------

def test_wrong_method_under_v1_is_a_json_405_in_anthropic_shape(gateway, key):
    status, headers, payload = raw(gateway, "GET", "/v1/messages", headers={"x-api-key": key})
    assert status == 405 and payload["type"] == "error" and payload["error"]["type"] == "invalid_request_error"
    assert headers["allow"] == "POST" and headers["request-id"].startswith("req_")


def test_unknown_path_under_v1_is_a_json_404(gateway):
    status, _, payload = raw(gateway, "GET", "/v1/nothing/here")
    assert status == 404 and payload["error"]["type"] == "not_found_error"


def test_chat_completions_without_v1_is_a_json_404_in_openai_shape(gateway, key):
    status, _, payload = raw(gateway, "POST", "/chat/completions", body=b"{}",
                             headers={"authorization": f"Bearer {key}", "content-type": "application/json"})
    assert status == 404 and "/v1/chat/completions" in payload["error"]["message"]
    assert payload["error"]["type"] == "not_found_error" and "type" not in payload


# -- forms ---------------------------------------------------------------------------------------

def test_a_form_over_64_kb_gets_a_clean_413(gateway):
    """As a browser on a real network sends it: the head first, the body in pieces after."""
    form = b"email=a%40b.c&password=" + b"x" * 300_000
    head = (f"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/x-www-form-urlencoded\r\n"
            f"cookie: ccgate_form=abc\r\nconnection: close\r\ncontent-length: {len(form)}\r\n\r\n").encode()
    with connect(gateway.port) as sock:
        sock.sendall(head)
        time.sleep(0.3)
        try:
            for start in range(0, len(form), 32768):
                sock.sendall(form[start:start + 32768])
                time.sleep(0.01)
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, data, _ = read_response(sock)
    assert status == 413, data[:300]
