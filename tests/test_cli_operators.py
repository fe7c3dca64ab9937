"""Issues 13 and 15 from the command line: ledger check, reports (per account at list price, per
Claude Code session), per-user overdraft, price modifiers, alert webhooks, account headroom, and
`serve --workers` keeping the metrics of dead workers right."""

from __future__ import annotations

import csv
import http.server
import io
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness import CCGATE, Gateway
from helpers import message_body, post


def sqlite_gateway(path: Path) -> Gateway:
    """A data directory on SQLite for CLI commands alone (no server), which a test may corrupt on purpose."""
    return Gateway(path, extra_env={"CCGATE_DATABASE_URL": f"sqlite+aiosqlite:///{path}/ccgate.sqlite3"}, workers=1)


def write(gateway: Gateway, sql: str, *params) -> None:
    with sqlite3.connect(gateway.data_dir / "ccgate.sqlite3") as db:
        db.execute(sql, params)


def read(gateway: Gateway, sql: str, *params) -> list[tuple]:
    with sqlite3.connect(gateway.data_dir / "ccgate.sqlite3") as db:
        return db.execute(sql, params).fetchall()


def refused(gateway: Gateway, *args: str, message: str) -> None:
    result = gateway.cli(*args, check=False)
    assert result.returncode == 2, (args, result.stdout, result.stderr)
    assert message in result.stderr, (args, result.stderr)


def test_ledger_check_says_ok_then_exits_1_listing_what_is_wrong(tmp_path):
    gateway = sqlite_gateway(tmp_path)
    gateway.cli("users", "add", "a@example.com", "--credit-usd", "5")
    gateway.cli("credit", "grant", "a@example.com", "2")
    ok = gateway.cli("ledger", "check")
    assert ok.stdout.strip() == "ledger check: OK (1 balances, 0 debits)"
    write(gateway, "update users set balance_micro = balance_micro + 1")
    broken = gateway.cli("ledger", "check", check=False)
    assert broken.returncode == 1
    assert "balance_mismatch: user 1: balance is 7000001 but its ledger entries sum to 7000000" in broken.stdout
    assert "ledger check: 1 problem(s)" in broken.stdout


def test_report_by_session_user_model_and_account_from_requests_made(gateway, email):
    key = gateway.new_key(email)
    session = f"sess-{email}"
    for _ in range(2):
        status, _, _ = post(gateway, key, message_body(), **{"x-claude-code-session-id": session})
        assert status == 200
    rows: list[tuple] = []
    deadline = time.monotonic() + 5
    while len(rows) < 2 and time.monotonic() < deadline:  # usage rows are committed just after the answer
        rows = gateway.query("select cost_micro, input_tokens, output_tokens from usage where session_id = %s", session)
        time.sleep(0.05)
    assert len(rows) == 2
    today = datetime.now(UTC).date().isoformat()
    report = gateway.cli("report", "--by", "session", "--from", today, "--to", today, "--csv").stdout
    lines = {line["session"]: line for line in csv.DictReader(io.StringIO(report))}
    mine = lines[session]
    assert int(mine["requests"]) == 2
    assert int(mine["input_tokens"]) == sum(row[1] for row in rows)
    assert int(mine["output_tokens"]) == sum(row[2] for row in rows)
    assert round(float(mine["cost_usd"]) * 1_000_000) == sum(row[0] for row in rows)
    text = gateway.cli("report", "--by", "user").stdout
    line = next(line for line in text.splitlines() if line.startswith(email))
    assert line.split()[1] == "2"
    by_account = {row["account"]: row for row in csv.DictReader(io.StringIO(
        gateway.cli("report", "--by", "account", "--csv").stdout))}
    assert float(by_account["sim-main"]["cost_input_usd"]) > 0 and float(by_account["sim-main"]["cost_output_usd"]) > 0
    assert "input $" in gateway.cli("report", "--by", "account").stdout, "cost per component at list price"
    yesterday = "2000-01-01"
    assert session not in gateway.cli("report", "--by", "session", "--to", yesterday).stdout, "the span filters"


@pytest.mark.parametrize("args, message", [
    (["--by", "week"], "invalid choice"),
    (["--by", "day", "--from", "2026-02-30"], "not a date"),
    (["--by", "day", "--from", "2026-02-02", "--to", "2026-02-01"], "is after"),
])
def test_report_refuses_bad_input_clearly(gateway, args, message):
    result = gateway.cli("report", *args, check=False)
    assert result.returncode == 2 and message in result.stderr


def test_users_overdraft_set_listed_reset_and_bad_input_changes_nothing(gateway, email):
    gateway.new_user(email, "--credit-usd", "1")
    assert gateway.cli("users", "overdraft", email, "2.5").stdout.strip() == f"{email} may go $2.50 below zero"
    assert f"{email}  user  active  credit $1.00  overdraft $2.50" in gateway.cli("users", "list").stdout
    for value, message in [("-1", "an overdraft is $0 to $1,000,000"), ("lots", "not an amount of dollars")]:
        refused(gateway, "users", "overdraft", email, value, message=message)
    refused(gateway, "users", "overdraft", "nobody@example.com", "1", message="no user")
    assert gateway.query("select overdraft_micro from users where email = %s", email) == [(2_500_000,)]
    gateway.cli("users", "overdraft", email, "default")
    assert gateway.query("select overdraft_micro from users where email = %s", email) == [(None,)]
    assert f"{email}  user  active  credit $1.00  overdraft default" in gateway.cli("users", "list").stdout


MODIFIER_COLUMNS = ("fast_input_bp, fast_output_bp, us_geo_bp, web_search_price_micro, web_fetch_price_micro, "
                    "long_context_threshold, long_context_input_bp, long_context_output_bp, batch_bp, input_price")


def test_models_set_changes_price_modifiers_and_bad_input_changes_nothing(tmp_path):
    gateway = sqlite_gateway(tmp_path)
    model = "claude-opus-4-6"
    shown = gateway.cli("models", "set", model, "--fast-x", "6", "--us-only-x", "1.1", "--web-search-usd", "0.02",
                        "--web-fetch-usd", "0.001", "--long-context-threshold", "200000", "--long-context-input-x",
                        "2", "--long-context-output-x", "1.5", "--batch-x", "0.5",
                        "--input-usd-per-mtok", "3").stdout
    assert "fast: input x6 output x6" in shown and "US-only x1.1" in shown and "web search $0.02/use" in shown
    assert "long context above 200,000 input tokens: input x2 output x1.5" in shown
    changed = read(gateway, f"select {MODIFIER_COLUMNS} from models where id = ?", model)
    assert changed == [(60_000, 60_000, 11_000, 20_000, 1_000, 200_000, 20_000, 15_000, 5_000, 3_000_000)]
    for args, message in [(["--us-only-x", "0"], "--us-only-x: a multiplier above 0"),  # the rest: test_ops_operators
                          (["--fast-x", "six"], "not a number"),
                          ([], "nothing to change")]:
        refused(gateway, "models", "set", model, *args, message=message)
    refused(gateway, "models", "set", "claude-nothing", "--batch-x", "0.5", message="no model claude-nothing")
    assert read(gateway, f"select {MODIFIER_COLUMNS} from models where id = ?", model) == changed
    gateway.cli("models", "set", model, "--fast-x", "none")
    assert read(gateway, "select fast_input_bp, fast_output_bp from models where id = ?", model) == [(None, None)]
    assert any(line.startswith(model) for line in gateway.cli("models", "list").stdout.splitlines())


class Receiver(http.server.BaseHTTPRequestHandler):
    received: list[tuple[dict, dict]] = []

    def do_POST(self) -> None:  # noqa: N802 (the standard library's name)
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        Receiver.received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def receiver():
    server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
    Receiver.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook/token"
    server.shutdown()
    server.server_close()


def test_alert_webhooks_from_the_cli(tmp_path, receiver):
    gateway = sqlite_gateway(tmp_path)
    added = subprocess.run([*CCGATE, "alerts", "add", "ops", receiver, "--secret", "-"], input="s3cret\n",
                           env=gateway.env, capture_output=True, text=True, timeout=60)
    assert added.returncode == 0 and "webhook ops added (generic, signed)" in added.stdout
    refused(gateway, "alerts", "add", "ops", receiver, message="exists already")
    listing = gateway.cli("alerts", "list").stdout
    assert "ops  generic  http://127.0.0.1" in listing and "signed  enabled" in listing
    assert "/hook/token" not in listing and "s3cret" not in listing, "URLs may hold tokens; secrets never shown"
    assert gateway.cli("alerts", "test").stdout.strip() == "test alert delivered to 1 of 1 enabled webhook(s)"
    headers, body = Receiver.received[-1]
    assert body["alert"] == "test" and "X-Ccgate-Signature" in headers
    assert "ops  test  gateway  delivered  1 attempt(s)  HTTP 204" in gateway.cli("alerts", "deliveries").stdout
    gateway.cli("alerts", "disable", "ops")
    refused(gateway, "alerts", "test", message="no enabled webhook")
    gateway.cli("alerts", "remove", "ops")
    refused(gateway, "alerts", "remove", "ops", message="no webhook ops")


def test_accounts_list_shows_headroom_and_why_an_account_is_unroutable(tmp_path):
    gateway = sqlite_gateway(tmp_path)
    gateway.cli("accounts", "add", "main", "--api-key", "sk-ant-x", "--base-url", "http://127.0.0.1:9")
    now_ms = int(time.time() * 1000)
    windows = {"requests": {"limit": 50, "remaining": 49, "reset_ms": now_ms + 30_000},
               "input-tokens": {"limit": 40000, "remaining": 0, "reset_ms": now_ms + 20_000}}
    for process, unroutable in (("p1", "input-tokens exhausted"), ("p2", "input-tokens exhausted")):
        write(gateway, "insert into account_status (account_id, process, in_flight, requests_last_minute, "
              "updated_ms, ratelimit, unroutable) values (1, ?, 0, 0, ?, ?, ?)",
              process, now_ms, json.dumps(windows), unroutable)
    line = gateway.cli("accounts", "list").stdout.strip()
    assert "requests 49/50 (whole in" in line and "input-tokens 0/40,000 (whole in" in line
    assert "unroutable: input-tokens exhausted" in line
    write(gateway, "update account_status set unroutable = null where process = 'p2'")
    assert "unroutable" not in gateway.cli("accounts", "list").stdout, "routable while any process can route to it"


def test_serve_workers_share_a_metrics_directory_and_a_dead_worker_s_live_gauges_are_dropped(tmp_path):
    from services import RedisServer

    redis = RedisServer().start()
    gateway = Gateway(tmp_path, extra_env={"CCGATE_REDIS_URL": redis.url,
                                           "CCGATE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/ccgate.sqlite3"},
                      workers=2)
    directory = tmp_path / "prometheus"
    directory.mkdir()
    (directory / "gauge_livesum_1.db").write_bytes(b"")  # a worker of a previous run: emptied at start
    try:
        gateway.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            pids = {int(path.stem.rsplit("_", 1)[1]) for path in directory.glob("gauge_livesum_*.db")}
            if len(pids) == 2:
                break
            time.sleep(0.2)
        assert len(pids) == 2 and 1 not in pids, sorted(path.name for path in directory.iterdir())
        dead = min(pids)
        os.kill(dead, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while (directory / f"gauge_livesum_{dead}.db").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not list(directory.glob(f"gauge_live*_{dead}.db")), "the supervisor told the metrics"
        assert list(directory.glob(f"*_{dead}.db")), "its counters and histograms stay in the sums"
    finally:
        gateway.stop()
        redis.stop()
