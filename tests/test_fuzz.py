"""Issue 14 item 10: bad inputs of every kind, generated; the gateway answers each with a clean status
(never a 5xx, never a hang).  schemathesis drives the admin API from its own OpenAPI schema; hypothesis
makes bodies for both dialects and the forms; a raw-socket list tries the HTTP layer.  The session ends
with "bad inputs tried: N, handled cleanly: N" (tests/conftest.py prints it)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fuzz_tally
from harness import Gateway
from rawhttp import connect
from webclient import STRONG_PASSWORD, WebClient

FAST = settings(max_examples=25, deadline=None, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck))
TIMEOUT = 15.0


@pytest.fixture(scope="module")
def target(sim, tmp_path_factory):
    """A gateway of its own: the admin API fuzzing changes users, keys, accounts and settings."""
    gateway = Gateway(tmp_path_factory.mktemp("fuzz"), extra_env={"CCGATE_HTTP_HEAD_TIMEOUT": "1",
                                                                   "CCGATE_HTTP_BODY_TIMEOUT": "1"})
    gateway.add_account("sim", "sk-ant-fuzz", sim.url)
    gateway.new_user("fuzz-admin@example.com", "--password", STRONG_PASSWORD, "--admin")
    gateway.start()
    yield gateway, gateway.new_key("fuzz-admin@example.com")
    gateway.stop()


def send(url: str, body: bytes, headers: dict[str, str], method: str = "POST") -> tuple[int | None, bytes]:
    """(status or None on a timeout or a dropped connection, body)."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (TimeoutError, urllib.error.URLError, ConnectionError):
        return None, b""


def handled(kind: str, status: int | None, body: bytes, shape: str | None = None, what: str = "") -> bool:
    """A status below 500 and, for an API error, a JSON body in the dialect's shape."""
    ok = status is not None and status < 500
    if ok and shape is not None and status >= 400:
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        ok = isinstance(payload, dict) and (
            payload.get("type") == "error" if shape == "anthropic" else isinstance(payload.get("error"), dict))
    return fuzz_tally.record(kind, ok, f"{what} {status} {body[:200]!r}")


# -- the two dialects ----------------------------------------------------------------------------

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                      st.floats(allow_nan=False), st.text(max_size=30))
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=20)
models = st.sampled_from(["claude-haiku-4-5", "claude-sonnet-4-6", "nope", "", "claude-haiku-4-5" * 50])
roles = st.sampled_from(["user", "assistant", "system", "tool", "developer", "", "x"])
content = st.one_of(st.text(max_size=40), json_value,
                    st.lists(st.fixed_dictionaries({"type": st.sampled_from(["text", "image", "tool_use", "x"]),
                                                    "text": json_value}), max_size=3))
message = st.fixed_dictionaries({"role": roles, "content": content})


def deep(levels: int) -> object:
    value: object = "x"
    for _ in range(levels):
        value = [value]
    return value


anthropic_bodies = st.fixed_dictionaries({"model": models, "messages": st.one_of(st.lists(message, max_size=3),
                                                                                  json_value)}, optional={
    "max_tokens": st.one_of(st.integers(min_value=-5, max_value=2**64), json_value),
    "stream": st.one_of(st.booleans(), json_value), "system": json_value, "tools": json_value,
    "temperature": json_value, "thinking": json_value, "tool_choice": json_value, "metadata": json_value,
    "deep": st.integers(min_value=100, max_value=400).map(deep), "extra": json_value})
openai_bodies = st.fixed_dictionaries({"model": models, "messages": st.one_of(st.lists(message, max_size=3),
                                                                               json_value)}, optional={
    "max_tokens": json_value, "max_completion_tokens": json_value, "stream": st.one_of(st.booleans(), json_value),
    "n": json_value, "response_format": json_value, "tools": json_value, "stop": json_value,
    "stream_options": json_value, "reasoning_effort": json_value,
    "deep": st.integers(min_value=100, max_value=400).map(deep)})
raw_bodies = st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode),
                       st.sampled_from([b"", b"null", b"[]", b"{", b'{"a":1}' * 3, b"\xff\xfe", b"1e999999"]))


@pytest.mark.parametrize("path, bodies, credential, dialect", [
    ("/v1/messages", anthropic_bodies, lambda key: {"x-api-key": key}, "anthropic"),
    ("/v1/chat/completions", openai_bodies, lambda key: {"authorization": f"Bearer {key}"}, "openai"),
], ids=["anthropic", "openai"])
def test_api_bodies(target, path, bodies, credential, dialect):
    gateway, key = target
    headers = {**credential(key), "content-type": "application/json"}

    @FAST
    @given(body=st.one_of(bodies.map(lambda data: json.dumps(data).encode()), raw_bodies))
    def one(body: bytes) -> None:
        status, answer = send(gateway.url + path, body, headers)
        assert handled(path, status, answer, dialect), (status, answer[:300])

    one()


# -- forms ---------------------------------------------------------------------------------------

form_text = st.one_of(st.text(max_size=40), st.sampled_from(
    ["²", "10" * 20, "-1", "1e308", "nan", "inf", "9999-12-31T23:59:59-14:00", "0001-01-01", "\x00", " " * 8]))


def test_dashboard_and_console_forms(target):
    gateway, _ = target
    browser = WebClient(gateway.url)
    assert browser.log_in("fuzz-admin@example.com") == 303
    forms = {"/dashboard/keys": ["name", "rpm", "concurrency", "token_budget", "expires", "models"],
             "/console/users/credit": ["email", "usd", "note"],
             "/console/codes": ["usd", "count", "note"],
             "/console/settings": ["signup_mode", "invite_code", "starting_credit", "max_rpm", "max_concurrency",
                                   "max_token_budget"]}
    _, _, html = browser.get("/dashboard/keys")
    csrf = html.split('name="csrf" value="', 1)[1].split('"', 1)[0]

    @FAST
    @given(action=st.sampled_from(sorted(forms)), data=st.data())
    def one(action: str, data: st.DataObject) -> None:
        fields = {name: data.draw(form_text, label=name) for name in forms[action]}
        status, _, page = browser.request("POST", action, {**fields, "csrf": csrf})
        assert handled("forms", status, page.encode()), (action, fields, status)

    one()
    status, _, _ = browser.get("/dashboard/usage?to=0001-01-01&from=9999-12-31")
    assert handled("forms", status, b"")


def test_login_and_signup_forms(target):
    gateway, _ = target

    @settings(FAST, max_examples=10)
    @given(path=st.sampled_from(["/login", "/signup"]), email=form_text, password=form_text)
    def one(path: str, email: str, password: str) -> None:
        status, _, page = WebClient(gateway.url).submit(path, {"email": email, "password": password,
                                                               "confirm": password})
        assert handled("forms", status, page.encode()), (path, email, password, status)

    one()


# -- the admin API, from its own schema -----------------------------------------------------------

def test_admin_api_from_its_openapi_schema(target):
    gateway, key = target
    status, body = send(gateway.url + "/admin/api/openapi.json", None, {"x-api-key": key}, method="GET")
    assert status == 200
    schema = schemathesis.openapi.from_dict(json.loads(body))
    base_url = gateway.url + "/admin/api"
    for result in schema.get_all_operations():
        fuzz_operation(result.ok(), base_url, key)


def fuzz_operation(operation: Any, base_url: str, key: str) -> None:
    """Generated calls of one admin API operation: each is a clean answer, never a 500 or a hang."""
    label = f"{operation.method.upper()} {operation.path}"

    @settings(FAST, max_examples=6)
    @given(case=operation.as_strategy())
    def one(case: Any) -> None:
        try:
            response = case.call(base_url=base_url, headers={"x-api-key": key}, timeout=TIMEOUT)
            status, text = response.status_code, response.content
        except Exception as error:  # a dropped connection or a timeout is not clean either
            status, text = None, repr(error).encode()
        assert handled("admin API", status, text, what=label), (label, status, text[:300])

    one()


# -- the HTTP layer, byte by byte ----------------------------------------------------------------

RAW_REQUESTS = [
    b"\r\n\r\n", b"GARBAGE\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"GET / HTTP/1.1\r\n\r\n",
    b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX: \x01\x02\r\n\r\n", b"POST /v1/messages HTTP/1.1\r\nHost: x\r\n"
    b"Content-Length: -5\r\n\r\n",
    b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
    b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
    b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
    b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{\"model\":",
    b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: " + b"k" * 100_000 + b"\r\n\r\n",
    b"GET /v1/models HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % n for n in range(5000)) + b"\r\n",
    b"GET /" + b"a" * 200_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/models HTTP/1.1\r\nHost: x\r\n\r\nJUNK\r\n\r\n",
    b"GET /v1/mod", b"", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /%2e%2e/%00 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"DELETE /v1/messages HTTP/1.1\r\nHost: x\r\n\r\n", b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
]


@pytest.mark.parametrize("index", range(len(RAW_REQUESTS)))
def test_raw_http(target, index):
    """Any response below 500, or the connection closed, within the deadlines: no 5xx and no hang."""
    gateway, _ = target
    started, data = time.monotonic(), b""
    with connect(gateway.port, timeout=6) as sock:
        try:
            sock.sendall(RAW_REQUESTS[index])
            while chunk := sock.recv(65536):
                data += chunk
                sock.settimeout(0.3)  # an answer came: a kept-alive connection need not be waited out
        except (BrokenPipeError, ConnectionResetError):
            pass
        except TimeoutError:
            if not data:
                data = b"(no answer and no close: a hang)"
    waited = time.monotonic() - started
    statuses = [int(line.split(b" ")[1]) for line in data.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")]
    clean = not data.startswith(b"(no answer") and all(code < 500 for code in statuses)
    assert fuzz_tally.record("raw HTTP", clean, f"#{index} {statuses} after {waited:.1f}s"), (statuses, data[:200])
