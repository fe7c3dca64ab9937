"""Issue 16 (items 1, 2) and issue 14 (item 9): `ccgate demo` prints snippets that run as pasted, an
operator login and a dashboard whose sign-ups can spend at once; and it never touches real data."""

from __future__ import annotations

import http.cookiejar
import json
import re
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import closing

import pytest

from harness import CCGATE, Gateway, free_port, stop_process, wait_for_port

SNIPPETS = {"curl:": "bash", "Python, Anthropic SDK (pip install anthropic):": "python",
            "Python, OpenAI SDK (pip install openai):": "python"}
ANSWER = "Hello from the ccgate simulator"


@pytest.fixture(scope="module")
def real(tmp_path_factory, sim):
    """A real deployment's data directory, with its own account and user, not running."""
    data_dir = tmp_path_factory.mktemp("real")
    gateway = Gateway(data_dir, extra_env={"CCGATE_DATABASE_URL": f"sqlite:///{data_dir}/ccgate.sqlite3"}, workers=1)
    gateway.add_account("real-upstream", "sk-ant-sim-real", sim.url)
    gateway.new_user("owner@example.com")
    return gateway


@pytest.fixture(scope="module")
def demo(tmp_path_factory, real):
    """`ccgate demo` started where CCGATE_DATA_DIR names the real data: it must use its own."""
    folder = tmp_path_factory.mktemp("demo")
    port = free_port()
    log = folder / "demo.out"
    process = subprocess.Popen([*CCGATE, "demo", "--port", str(port), "--data-dir", str(folder / "data")],
                               env={**real.env, "CCGATE_RELOAD_INTERVAL": "0.2"},
                               stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    wait_for_port(port, process)
    yield f"http://127.0.0.1:{port}", log.read_text(), folder / "data"
    stop_process(process)


def printed_snippets(output: str) -> dict[str, str]:
    """Each snippet the demo prints: the lines after its heading, up to the next blank line."""
    blocks = [block.split("\n", 1) for block in output.split("\n\n") if "\n" in block]
    return {heading: body for heading, body in blocks if heading in SNIPPETS}


def test_every_printed_snippet_runs_as_pasted(demo):
    _, output, _ = demo
    snippets = printed_snippets(output)
    assert set(snippets) == set(SNIPPETS)
    for heading, body in snippets.items():
        runner = ["bash", "-s"] if SNIPPETS[heading] == "bash" else [sys.executable, "-"]
        result = subprocess.run(runner, input=body, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and ANSWER in result.stdout, (heading, result.stdout, result.stderr[-1500:])


def test_the_demo_output_is_quiet_and_shows_the_dashboard_and_an_operator_login(demo):
    base_url, output, _ = demo
    assert "alembic" not in output.lower() and " INFO " not in output
    assert f"Dashboard: {base_url}/login" in output
    password = re.search(r"login admin@ccgate\.local, password \(shown once\): (\S+)", output).group(1)
    browser = Browser(base_url)
    browser.post_form("/login", "/login", {"email": "admin@ccgate.local", "password": password})
    assert "<h1>Console</h1>" in browser.get("/console") and browser.final_path == "/console"


def test_a_sign_up_on_the_demo_makes_a_key_that_answers(demo):
    base_url, _, _ = demo
    browser = Browser(base_url)
    browser.post_form("/signup", "/signup", {"email": "newcomer@example.com", "password": "correct-horse-9",
                                             "confirm": "correct-horse-9"})
    page = browser.post_form("/dashboard/keys", "/dashboard/keys", {"name": "first"})
    key = re.search(r"(cc_user_\w{20,})", page).group(1)
    assert ask(base_url, key) == 200, "a sign-up starts with credit, so its first key is not refused with 402"


def ask(base_url: str, key: str, patience: float = 5.0) -> int:
    """The status of one message; 401 is retried while the server reloads keys (every 0.2 s here)."""
    deadline = time.monotonic() + patience
    body = json.dumps({"model": "claude-sonnet-4-6", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]})
    while True:
        request = urllib.request.Request(base_url + "/v1/messages", method="POST", data=body.encode(), headers={
            "x-api-key": key, "anthropic-version": "2023-06-01", "content-type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as error:
            if error.code != 401 or time.monotonic() > deadline:
                return error.code
        time.sleep(0.1)


def test_a_demo_key_never_authenticates_on_serve_and_real_data_is_untouched(demo, real):
    _, output, demo_data = demo
    key = re.search(r"Your demo key \(shown once\): (cc_user_\w+)", output).group(1)
    assert (demo_data / "ccgate.sqlite3").exists()
    assert rows(real, "select name from accounts") == [("real-upstream",)]
    assert rows(real, "select email from users") == [("owner@example.com",)]
    real.start()
    try:
        request = urllib.request.Request(real.url + "/v1/models", headers={"x-api-key": key})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 401
    finally:
        real.stop()
    assert rows(real, "select name from accounts") == [("real-upstream",)]
    assert rows(real, "select count(*) from api_keys") == [(0,)]


def rows(gateway: Gateway, sql: str) -> list[tuple]:
    with closing(sqlite3.connect(gateway.data_dir / "ccgate.sqlite3")) as db:
        return db.execute(sql).fetchall()


class Browser:
    """Form posts as a browser sends them: cookies kept, the CSRF token of the form's page."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.final_path = ""

    def get(self, path: str) -> str:
        with self.opener.open(self.base_url + path, timeout=30) as response:
            self.final_path = urllib.parse.urlsplit(response.url).path
            return response.read().decode()

    def post_form(self, path: str, page: str, form: dict[str, str]) -> str:
        csrf = re.search(r'name="csrf" value="([^"]+)"', self.get(page)).group(1)
        data = urllib.parse.urlencode({"csrf": csrf, **form}).encode()
        with self.opener.open(urllib.request.Request(self.base_url + path, data=data), timeout=30) as response:
            self.final_path = urllib.parse.urlsplit(response.url).path
            return response.read().decode()

