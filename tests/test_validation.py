"""Issue 14 item 5: out-of-range input is a clear 4xx (forms, admin API), and settings are checked at start."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ccgate import validate
from ccgate.config import Settings, SettingsError
from harness import free_port
from test_messages import raw
from webclient import STRONG_PASSWORD, WebClient


@pytest.fixture(scope="module")
def signed_in(gateway) -> tuple[WebClient, str]:
    email = "ranges@example.com"
    gateway.new_user(email, "--password", STRONG_PASSWORD, "--admin")
    browser = WebClient(gateway.url)
    assert browser.log_in(email) == 303
    return browser, email


@pytest.mark.parametrize("field, value, message", [
    ("rpm", "²", "whole number"),
    ("rpm", str(10**30), "whole number"),
    ("token_budget", "99999999999999999999", "whole number"),
    ("expires", "9999-12-31T23:59:59-14:00", "between"),
    ("expires", "0001-01-01", "between"),
])
def test_key_form_refuses_out_of_range_values_with_a_message(signed_in, field, value, message):
    browser, _ = signed_in
    status, _, html = browser.submit("/dashboard/keys", {"name": "k", field: value})
    assert status < 500 and message in html, html[-2000:]
    assert "cc_user_" not in html, "no key was created"


def test_usage_filter_far_in_the_past_is_refused_not_a_500(signed_in):
    browser, _ = signed_in
    status, _, html = browser.get("/dashboard/usage?to=0001-01-01")
    assert status < 500 and "between" in html


def test_console_grant_of_1e308_dollars_is_refused(signed_in):
    browser, email = signed_in
    status, _, html = browser.submit("/console/users", {"email": email, "usd": "1e308"},
                                     action="/console/users/credit")
    assert status < 500 and "dollars" in html, html[-1500:]


@pytest.fixture(scope="module")
def admin_key(gateway) -> str:
    gateway.new_user("ranges-api@example.com", "--admin")
    return gateway.new_key("ranges-api@example.com")


@pytest.mark.parametrize("method, path, body", [
    ("POST", "/admin/api/users/ranges-api@example.com/keys", {"rpm": 10**30}),
    ("POST", "/admin/api/users/ranges-api@example.com/keys", {"expires": "9999-12-31T23:59:59-14:00"}),
    ("POST", "/admin/api/users/ranges-api@example.com/credit", {"usd": 1e308}),
    ("POST", "/admin/api/codes", {"usd": 1e300}),
    ("GET", "/admin/api/usage?until_ms=99999999999999999999", None),
])
def test_admin_api_refuses_out_of_range_values(gateway, admin_key, method, path, body):
    status, _, payload = raw(gateway, method, path, body=json.dumps(body).encode() if body is not None else None,
                             headers={"x-api-key": admin_key, "content-type": "application/json"})
    assert status == 422, payload


def test_validation_helpers():
    assert validate.whole_number("1,000", "n") == 1000
    for bad in ("²", "-1", "1e3", str(validate.MAX_COUNT + 1)):
        with pytest.raises(validate.InputError):
            validate.whole_number(bad, "n")
    with pytest.raises(validate.InputError):
        validate.usd(float("inf"), "usd")
    assert validate.usd(-5, "usd", negative=True) == -5
    assert validate.expiry("2030-01-01T00:00:00+14:00") == "2030-01-01T00:00:00+14:00"
    with pytest.raises(validate.InputError):
        validate.expiry("9999-12-31T23:59:59-14:00")


@pytest.mark.parametrize("name, value, accepted", [
    ("CCGATE_CACHE_SCOPE", "users", "user, key, global"),
    ("CCGATE_CACHE_SCOPE", "User", "user, key, global"),
    ("CCGATE_CACHE", "maybe", "true"),
    ("CCGATE_CACHE_COALESCE", "enabled", "false"),
    ("CCGATE_DEFAULT_RPM", "ten", "whole number"),
    ("CCGATE_CONNECT_TIMEOUT", "nan", "number"),
    ("CCGATE_DEFAULT_WINDOW", "forever", "duration"),
    ("CCGATE_REDIS_URL", "localhost:6379", "redis://"),
])
def test_every_setting_is_checked(monkeypatch, name, value, accepted):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        Settings.from_env()
    assert name in str(caught.value) and accepted in str(caught.value)


def test_valid_settings_still_load(monkeypatch):
    monkeypatch.setenv("CCGATE_CACHE_SCOPE", "key")
    monkeypatch.setenv("CCGATE_CACHE", "off")
    settings = Settings.from_env()
    assert settings.cache.scope == "key" and settings.cache.enabled is False


def test_serve_refuses_to_start_on_a_bad_setting(tmp_path):
    env = {"CCGATE_DATA_DIR": str(tmp_path), "CCGATE_CACHE_SCOPE": "users", "PATH": "/usr/bin:/bin",
           "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    result = subprocess.run([sys.executable, "-m", "ccgate.cli", "serve", "--port", str(free_port())], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "CCGATE_CACHE_SCOPE" in result.stderr and "user, key, global" in result.stderr
