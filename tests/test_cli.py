"""Issue 2: the admin CLI works on the data of a running server, which sees changes within a second."""

from __future__ import annotations

import os
import stat
import time

import anthropic
import pytest

from harness import Gateway


def ask(gateway, key: str) -> anthropic.types.Message:
    client = anthropic.Anthropic(api_key=key, base_url=gateway.url, max_retries=0)
    return client.messages.create(model="claude-haiku-4-5", max_tokens=16, messages=[{"role": "user", "content": "hi"}])


def test_keys_create_prints_the_key_alone_on_the_last_line(gateway, email):
    gateway.new_user(email)
    result = gateway.cli("keys", "create", email, "--name", "laptop")
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("cc_user_") and len(last) >= len("cc_user_") + 32
    assert last.strip() == last and " " not in last
    listing = gateway.cli("keys", "list", email).stdout
    assert "laptop" in listing and last[-4:] in listing
    assert last not in listing, "a key is shown once, never again"


def test_a_key_created_while_serving_works_and_a_revoked_one_stops_within_a_second(gateway, email):
    key = gateway.new_key(email)
    gateway.wait_reload()
    assert ask(gateway, key).content
    key_id = gateway.cli("keys", "list", email).stdout.split()[0]
    gateway.cli("keys", "revoke", key_id)
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        try:
            ask(gateway, key)
        except anthropic.AuthenticationError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("revoked key still accepted after a second")
    assert "revoked" in gateway.cli("keys", "list", email).stdout


def test_server_secret_is_private(gateway):
    mode = stat.S_IMODE(os.stat(gateway.data_dir / "server-secret").st_mode)
    assert mode == 0o600


def test_keys_are_stored_as_hmac_only(gateway, email):
    import sqlite3

    key = gateway.new_key(email)
    with sqlite3.connect(gateway.data_dir / "ccgate.sqlite3") as db:
        dump = "\n".join(db.iterdump())
    assert key not in dump and key[len("cc_user_"):] not in dump


def test_upstream_credentials_are_encrypted_at_rest(gateway):
    import sqlite3

    with sqlite3.connect(gateway.data_dir / "ccgate.sqlite3") as db:
        dump = "\n".join(db.iterdump())
    assert "sk-ant-sim-main" not in dump
    assert "sim-main" in gateway.cli("accounts", "list").stdout


@pytest.mark.parametrize("args, message", [
    (["users", "add", "not-an-email"], "not an email address"),
    (["keys", "create", "nobody@example.com"], "no user"),
    (["keys", "revoke", "key_doesnotexist"], "no key"),
    (["accounts", "add", "bad", "--api-key", "k", "--base-url", "ftp://x"], "base URL"),
])
def test_bad_input_is_a_clear_error_and_changes_nothing(gateway, args, message):
    tables = ("users", "api_keys", "accounts", "ledger")
    before = {table: gateway.query(f"select * from {table}") for table in tables}
    result = gateway.cli(*args, check=False)
    assert result.returncode == 2
    assert message in result.stderr
    assert {table: gateway.query(f"select * from {table}") for table in tables} == before


def test_settings_change_what_is_given_and_bad_input_changes_nothing(tmp_path):
    gateway = Gateway(tmp_path / "settings")
    assert gateway.cli("settings", "show").stdout.splitlines()[0] == "sign-up: open"
    shown = gateway.cli("settings", "set", "--signup", "invite", "--invite-code", "letmein", "--max-rpm", "30").stdout
    assert "sign-up: invite (invite code letmein)" in shown and "max rpm: 30" in shown
    shown = gateway.cli("settings", "set", "--max-rpm", "0").stdout
    assert "max rpm: none" in shown and "sign-up: invite" in shown, "0 clears a cap; the rest stays"
    before = gateway.query("select * from operator_settings")
    for args, message in [([], "nothing to change"), (["--signup", "sometimes"], "invalid choice"),
                          (["--max-rpm", "-3"], "whole number"),
                          (["--signup", "invite", "--invite-code", "ab"], "6 characters or more")]:
        result = gateway.cli("settings", "set", *args, check=False)
        assert result.returncode == 2 and message in result.stderr, args
    assert gateway.query("select * from operator_settings") == before


def test_duplicate_user_is_refused(gateway, email):
    gateway.new_user(email)
    result = gateway.cli("users", "add", email, check=False)
    assert result.returncode == 2 and "exists already" in result.stderr
