"""Issue 16, item 6 (the CLI's rough edges) and items 3, 4 (the public URL; a busy port)."""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import subprocess
import urllib.request

import pytest

from ccgate.cli.common import usd
from ccgate.cli.listen import public_url_mismatch, settle_public_url
from ccgate.config import SECRET_FILE
from ccgate.crypto import SecretBox
from harness import CCGATE, Gateway, free_port


@pytest.mark.parametrize("args, usage", [
    (["keys", "create", "a@b", "--bogus"], "usage: ccgate keys create"),
    (["keys", "update", "key_x", "--bogus"], "usage: ccgate keys update"),
    (["credit", "show", "a@b", "--bogus"], "usage: ccgate credit show"),
    (["serve", "--bogus"], "usage: ccgate serve"),
])
def test_a_wrong_flag_shows_the_subcommands_usage(args, usage):
    result = subprocess.run([*CCGATE, *args], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.startswith(usage) and "unrecognized arguments: --bogus" in result.stderr


@pytest.mark.parametrize("micro, text", [(500_000, "$0.50"), (1_000_000, "$1.00"), (0, "$0.00"),
                                         (125, "$0.000125"), (12_345_670_000, "$12345.67"), (-500_000, "-$0.50")])
def test_money_has_two_decimals_or_more(micro, text):
    assert usd(micro) == text
    assert usd(500_000, signed=True) == "+$0.50"


def test_credit_and_codes_print_money_and_dates(gateway, email):
    gateway.new_user(email, "--credit-usd", "0.5")
    gateway.cli("credit", "grant", email, "1", "--note", "top-up")
    shown = gateway.cli("credit", "show", email).stdout.splitlines()
    assert shown[0] == f"{email}: $1.50"
    assert re.match(r"  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  grant\s+\+\$1\.00  top-up$", shown[1]), shown
    assert re.match(r"  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  grant\s+\+\$0\.50  starting credit$", shown[2]), shown
    assert "worth $1.00 each" in gateway.cli("codes", "create", "--usd", "1").stderr


def test_a_whole_key_where_the_id_belongs_gets_a_hint_and_is_not_echoed(gateway, email):
    key = gateway.new_key(email)
    for action in (["update", key, "--rpm", "5"], ["revoke", key]):
        result = gateway.cli("keys", *action, check=False)
        assert result.returncode == 2 and "takes the key's id" in result.stderr
        assert key not in result.stderr


@pytest.mark.parametrize("how", ["stdin", "flag-env", "default-env"])
def test_an_account_secret_need_not_be_on_the_command_line(tmp_path, how):
    gateway = Gateway(tmp_path, extra_env={"CCGATE_DATABASE_URL": f"sqlite:///{tmp_path}/ccgate.sqlite3"})
    secret = f"sk-ant-private-{how}"
    args, env = {"stdin": (["--api-key", "-"], {}),
                 "flag-env": (["--api-key-env", "MY_KEY"], {"MY_KEY": secret}),
                 "default-env": ([], {"CCGATE_ACCOUNT_API_KEY": secret})}[how]
    result = subprocess.run([*CCGATE, "accounts", "add", "up", *args], input=secret + "\n", text=True,
                            env={**gateway.env, **env}, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    box = SecretBox((tmp_path / SECRET_FILE).read_text().strip().encode())
    with sqlite3.connect(tmp_path / "ccgate.sqlite3") as db:
        (stored,) = db.execute("select api_key_enc from accounts where name = 'up'").fetchone()
    assert box.decrypt(stored) == secret


def test_an_account_without_any_secret_is_refused(tmp_path):
    result = subprocess.run([*CCGATE, "accounts", "add", "up"], capture_output=True, text=True, timeout=60,
                            env={**Gateway(tmp_path).env, "CCGATE_ACCOUNT_API_KEY": ""})
    assert result.returncode == 2 and "--api-key -" in result.stderr


def test_serve_on_a_busy_port_says_so_before_claiming_to_listen(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = subprocess.run([*CCGATE, "serve", "--port", str(port)], capture_output=True, text=True,
                                env=Gateway(tmp_path).env, timeout=60)
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "listening" not in result.stdout


def test_the_public_url_follows_the_port_and_serve_is_quiet(gateway):
    with urllib.request.urlopen(gateway.url + "/docs", timeout=10) as response:
        assert gateway.url in response.read().decode(), "the docs tell users the address the server listens on"
    log = gateway.log_path.read_text()
    assert "alembic" not in log.lower()


def test_serve_warns_when_the_public_url_points_elsewhere(tmp_path):
    elsewhere = Gateway(tmp_path, extra_env={"CCGATE_PUBLIC_URL": "http://127.0.0.1:8080"}, port=free_port())
    elsewhere.start()
    elsewhere.stop()
    assert "warning: CCGATE_PUBLIC_URL is http://127.0.0.1:8080" in elsewhere.log_path.read_text()


@pytest.mark.parametrize("public, host, port, mismatch", [
    ("http://127.0.0.1:8080", "127.0.0.1", 8080, False), ("http://localhost:8080/", "127.0.0.1", 8080, False),
    ("http://gw.example.com", "0.0.0.0", 80, False), ("http://127.0.0.1:8080", "127.0.0.1", 20102, True),
    ("https://gw.example.com", "127.0.0.1", 8080, True),
])
def test_public_url_mismatch(public, host, port, mismatch):
    assert public_url_mismatch(public, host, port) is mismatch


def test_an_unset_public_url_follows_host_and_port(monkeypatch):
    monkeypatch.delenv("CCGATE_PUBLIC_URL", raising=False)
    assert settle_public_url("0.0.0.0", 20102) is None
    assert os.environ["CCGATE_PUBLIC_URL"] == "http://127.0.0.1:20102"
