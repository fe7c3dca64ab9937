"""Issue 14 item 6: login and sign-up throttles, trusted proxies, the password policy, no email oracle,
the admin schema behind admin credentials with local assets, private data files."""

from __future__ import annotations

import asyncio
import re
import stat
import subprocess
import sys
from ipaddress import ip_network

import pytest
from starlette.requests import Request

from ccgate.http.web.client_address import client_address
from ccgate.http.web.throttle import Allowance, LoginThrottle, RedisAttempts
from ccgate.passwords import password_problem
from harness import Gateway
from services import RedisServer
from test_messages import raw
from webclient import STRONG_PASSWORD, WebClient


def started(sim, directory, **env: str):
    gateway = Gateway(directory, extra_env=env)
    gateway.add_account("sim", "sk-ant-auth", sim.url)
    gateway.new_user("known@example.com", "--password", STRONG_PASSWORD)
    gateway.new_user("boss@example.com", "--password", STRONG_PASSWORD, "--admin")
    return gateway.start()


@pytest.fixture(scope="module")
def site(sim, tmp_path_factory):
    gateway = started(sim, tmp_path_factory.mktemp("auth"))
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def flooded(sim, tmp_path_factory):
    """A gateway whose throttles the flood tests spend (every test client is 127.0.0.1)."""
    gateway = started(sim, tmp_path_factory.mktemp("auth-flood"), CCGATE_SIGNUPS_PER_HOUR="4")
    yield gateway
    gateway.stop()


def page_text(html: str) -> str:
    """The visible answer, without the per-request CSRF token."""
    return re.sub(r'name="csrf" value="[^"]*"', "", html)


def test_unknown_email_and_wrong_password_get_the_same_answer(site):
    unknown = WebClient(site.url).submit("/login", {"email": "nobody@example.com", "password": "wrong-guess-1"})
    wrong = WebClient(site.url).submit("/login", {"email": "known@example.com", "password": "wrong-guess-1"})
    assert unknown[0] == wrong[0] == 400
    assert page_text(unknown[2]).replace("nobody", "known") == page_text(wrong[2])


def test_thirty_emails_from_one_address_are_throttled_even_with_rotating_forwarded_for(flooded):
    statuses = []
    for n in range(30):
        browser = WebClient(flooded.url, headers={"X-Forwarded-For": f"10.9.{n}.1"})
        statuses.append(browser.submit("/login", {"email": f"guess{n}@example.com", "password": "wrong-guess-1"})[0])
    assert statuses[:20] == [400] * 20
    assert statuses[-1] == 429, statuses


def test_sign_up_refuses_weak_passwords_hides_known_emails_and_is_rate_limited(flooded):
    weak = "12345678"
    status, _, html = WebClient(flooded.url).submit("/signup", {"email": "weak@example.com", "password": weak,
                                                                "confirm": weak})
    assert status == 400 and "too easy to guess" in html, html[-800:]
    form = {"email": "known@example.com", "password": "another-strong-pass-42", "confirm": "another-strong-pass-42"}
    status, _, html = WebClient(flooded.url).submit("/signup", form)
    assert status == 400 and "exists" not in html and "could not sign up" in html
    statuses = [WebClient(flooded.url).submit("/signup", {**form, "email": f"new{n}@example.com"})[0]
                for n in range(3)]
    assert statuses == [303, 303, 429], "the fifth sign-up from one address within the hour waits"


def test_password_policy():
    assert password_problem("12345678") and password_problem("password") and password_problem(" " * 8)
    assert password_problem("alice@example.com", "alice@example.com")
    assert password_problem("short") and password_problem("x" * 2000)
    assert password_problem(STRONG_PASSWORD) is None


def test_the_password_lists_are_loaded_only_to_judge_a_password() -> None:
    """zxcvbn's lists take 14 MB: a serving process that never sees a password keeps them out."""
    program = ("import sys, ccgate.app, ccgate.cli; loaded = 'zxcvbn' in sys.modules; "
               "from ccgate.passwords import password_problem; password_problem('x' * 9); "
               "print(loaded, 'zxcvbn' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "True"]


def make_request(peer: str, forwarded: str | None = None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return Request({"type": "http", "client": (peer, 1234), "headers": headers, "method": "GET", "path": "/"})


def test_forwarded_for_is_believed_only_from_trusted_proxies():
    proxies = (ip_network("10.0.0.0/8"),)
    assert client_address(make_request("127.0.0.1", "1.2.3.4"), ()) == "127.0.0.1"
    assert client_address(make_request("127.0.0.1", "1.2.3.4"), proxies) == "127.0.0.1"
    assert client_address(make_request("10.0.0.5", "6.6.6.6, 1.2.3.4"), proxies) == "1.2.3.4"
    assert client_address(make_request("10.0.0.5", "1.2.3.4, 10.0.0.7"), proxies) == "1.2.3.4"
    assert client_address(make_request("10.0.0.5"), proxies) == "10.0.0.5"


def test_login_throttle_is_shared_through_redis(tmp_path):
    server = RedisServer(directory=str(tmp_path)).start()
    try:
        async def scenario() -> float | None:
            from redis.asyncio import Redis

            first, second = Redis.from_url(server.url), Redis.from_url(server.url)
            rule = Allowance(free=3, window=60)
            one = LoginThrottle(RedisAttempts(first, "t:"), per_account=rule)
            other = LoginThrottle(RedisAttempts(second, "t:"), per_account=rule)
            for _ in range(3):
                await one.login_failed("a@example.com", "1.1.1.1")
            wait = await other.login_wait("a@example.com", "2.2.2.2")
            await first.aclose()
            await second.aclose()
            return wait

        assert asyncio.run(scenario()) == pytest.approx(1, abs=0.2)
    finally:
        server.stop()


def test_admin_schema_and_docs_need_admin_credentials_and_use_no_cdn(site):
    assert raw(site, "GET", "/admin/api/openapi.json")[0] == 401
    user_key = site.new_key("known@example.com")
    assert raw(site, "GET", "/admin/api/openapi.json", headers={"x-api-key": user_key})[0] == 401
    admin_key = site.new_key("boss@example.com")
    status, _, schema = raw(site, "GET", "/admin/api/openapi.json", headers={"x-api-key": admin_key})
    assert status == 200 and "/users" in schema["paths"]
    browser = WebClient(site.url)
    assert browser.get("/admin/api/docs")[0] == 303
    assert browser.log_in("boss@example.com") == 303
    status, _, html = browser.get("/admin/api/docs")
    assert status == 200 and "cdn" not in html and "http" not in html.replace("http-equiv", "")
    for asset in re.findall(r"(?:src|href)=['\"]([^'\"]+)['\"]", html):
        assert browser.get(asset)[0] == 200, asset
    assert browser.get("/admin/api/openapi.json")[0] == 200


def test_the_data_directory_and_database_are_private(site):
    assert stat.S_IMODE(site.data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((site.data_dir / "ccgate.sqlite3").stat().st_mode) == 0o600
