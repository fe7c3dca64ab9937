"""Issue 7: the web dashboard, driven through Debian's Chromium with Playwright.

One gateway of its own (its public URL is its real address, so the docs' snippets run as
shown), answered by the session's simulator.  Screenshots of every page go to
test-artifacts/web/ for a reviewer.
"""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import anthropic
import pytest
from starlette.responses import Response

from ccgate.http.web.charts import Series, bar_chart, nice_ceiling
from ccgate.http.web.render import usd
from ccgate.http.web.sessions import set_cookie
from ccgate.http.web.throttle import Allowance, LoginThrottle, MemoryAttempts
from ccgate.ops import KeyLimits, OperationError, WebSettings
from harness import Gateway
from helpers import CHROMIUM, CHROMIUM_ARGS

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "web"
ADMIN, ADMIN_PASSWORD = "operator@example.com", "operator-password"
PASSWORD = "correct horse battery"
STARTING_CREDIT = 5.0

_people = itertools.count(1)


def person(role: str = "user") -> str:
    return f"{role}{next(_people)}@example.com"


def csrf_in(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def shoot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def client(site, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key=key, base_url=site.url, max_retries=0)


def ask(site, key: str, model: str = "claude-haiku-4-5") -> anthropic.types.Message:
    return client(site, key).messages.create(model=model, max_tokens=32,
                                             messages=[{"role": "user", "content": "Hello, world!"}])


def refused_within(site, key: str, seconds: float = 3.0) -> bool:
    """True once the gateway answers the key with 401."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            ask(site, key)
        except anthropic.AuthenticationError:
            return True
        time.sleep(0.1)
    return False


# -- fixtures -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def site(sim, tmp_path_factory):
    gateway = Gateway(tmp_path_factory.mktemp("web"))
    gateway.extra_env["CCGATE_PUBLIC_URL"] = gateway.url
    gateway.extra_env["CCGATE_SIGNUPS_PER_HOUR"] = "1000"  # every browser here comes from 127.0.0.1
    gateway.add_account("sim-main", "sk-ant-sim-main", sim.url)
    gateway.new_user(ADMIN, "--password", ADMIN_PASSWORD, "--admin")
    gateway.start()
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def playwright():
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright):
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


@pytest.fixture
def new_context(browser, site):
    """Fresh browsers (each its own cookies), closed after the test."""
    contexts = []

    def make():
        context = browser.new_context(base_url=site.url, permissions=["clipboard-read", "clipboard-write"])
        context.on("dialog", lambda dialog: dialog.accept())
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


def log_in(context, email: str, password: str):
    """Log in through the form, in a page of `context`; returns the page."""
    page = context.new_page()
    page.goto("/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("form.stack button")
    page.wait_for_load_state()
    return page


def post(context, path: str, form: dict, *, csrf_from: str):
    """A form POST as the browser would send it, with the CSRF token of the page at `csrf_from`."""
    token = csrf_in(context.request.get(csrf_from).text())
    return context.request.post(path, form={"csrf": token, **form}, max_redirects=0)


@pytest.fixture(scope="module")
def operator_ready(browser, site):
    """The operator has opened sign-up with starting credit (through the console, as they would)."""
    context = browser.new_context(base_url=site.url)
    log_in(context, ADMIN, ADMIN_PASSWORD)
    response = post(context, "/console/settings", {"signup_mode": "open", "starting_credit": str(STARTING_CREDIT)},
                    csrf_from="/console/settings")
    assert response.status == 303
    yield context
    context.close()


def sign_up(context, email: str) -> None:
    response = post(context, "/signup", {"email": email, "password": PASSWORD, "confirm": PASSWORD},
                    csrf_from="/signup")
    assert response.status == 303, response.text()


def create_key(context, name: str = "") -> tuple[str, str]:
    """(key id, plaintext) of a key made on the keys page."""
    html = post(context, "/dashboard/keys", {"name": name}, csrf_from="/dashboard/keys").text()
    plaintext = re.search(r'<pre id="new-key"[^>]*>([^<]+)</pre>', html).group(1)
    key_id = re.findall(r'data-key-id="([^"]+)"', html)[0]
    return key_id, plaintext


@pytest.fixture
def user(new_context, site, operator_ready):
    """A signed-up, signed-in user with a working key: (context, email, key id, key)."""
    context, email = new_context(), person()
    sign_up(context, email)
    key_id, key = create_key(context, "fixture")
    site.wait_until_key_works(key)
    return SimpleNamespace(context=context, email=email, key_id=key_id, key=key)


# -- the user's path ------------------------------------------------------------------------------

def test_from_the_docs_to_a_working_sdk_call_and_back_to_usage(site, new_context, operator_ready):
    page = new_context().new_page()
    page.goto("/")
    assert page.url == site.url + "/docs"
    assert page.inner_text("#base-url") == site.url
    shoot(page, "docs")

    page.click("header >> text=Sign up")
    email = person("newcomer")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=confirm]", PASSWORD)
    shoot(page, "signup")
    page.click("form.stack button")
    assert page.url.startswith(site.url + "/dashboard/keys")
    assert "Welcome" in page.inner_text(".notice")

    page.fill("input[name=name]", "laptop")
    page.click("button:has-text('Create key')")
    key = page.inner_text("#new-key").strip()
    assert key.startswith("cc_user_") and len(key) >= 40
    assert "won't show it again" in page.inner_text("#new-key-panel")
    page.click("button[data-copy=new-key]")
    assert page.evaluate("navigator.clipboard.readText()") == key
    assert key in page.inner_text("#try-python"), "the ready-to-run snippet carries the key"
    shoot(page, "keys-created")

    site.wait_until_key_works(key)
    message = ask(site, key, "claude-sonnet-4-6")
    request_id = message._request_id
    cost = client(site, key).get(f"/v1/usage/{request_id}", cast_to=object)["cost_micro"]
    assert cost > 0

    page.goto("/dashboard/usage")
    row = page.locator(f"tr[data-request-id='{request_id}']")
    assert row.count() == 1
    assert row.locator("td.cost").inner_text() == usd(cost)
    assert "claude-sonnet-4-6" in row.inner_text() and "200" in row.inner_text()
    assert page.inner_text("#total-cost") == usd(cost)
    assert page.locator("svg.chart rect.s0").count() >= 2, "token and cost charts have a bar for today"
    shoot(page, "usage")

    page.goto("/dashboard/keys")
    assert key not in page.content(), "a key is shown once, never again"
    assert key[-4:] in page.inner_text("#keys")
    shoot(page, "keys")

    page.goto("/dashboard/credit")
    assert page.inner_text("#balance") == usd(round(STARTING_CREDIT * 1_000_000) - cost)
    ledger = page.inner_text("#ledger")
    assert "starting credit" in ledger and request_id in ledger
    shoot(page, "credit")

    page.goto("/docs")
    assert key[-4:] in page.inner_text("#your-keys"), "the docs name the user's own keys"

    page.goto("/dashboard/keys")
    page.click("#keys button:has-text('Revoke')")
    assert "revoked" in page.inner_text(".notice")
    assert refused_within(site, key)

    page.goto("/dashboard/account")
    shoot(page, "account")


def test_operator_grants_credit_and_takes_a_failing_upstream_account_out(site, sim, new_context, user):
    page = log_in(new_context(), ADMIN, ADMIN_PASSWORD)
    assert page.url == site.url + "/dashboard/keys"

    page.goto("/console/accounts")
    page.fill("form.stack input[name=name]", "sim-flaky")
    page.fill("form.stack input[name=api_key]", "sk-ant-sim-flaky")
    page.fill("form.stack input[name=base_url]", sim.url)
    page.fill("form.stack input[name=priority]", "10")
    page.click("button:has-text('Add account')")
    assert "added" in page.inner_text(".notice")
    assert "sk-ant-sim-flaky" not in page.content(), "an upstream credential is never shown"

    sim.fault("sk-ant-sim-flaky", "429", retry_after=120)
    site.wait_reload()
    assert ask(site, user.key).content, "the request fails over to the healthy account"
    flaky = page.locator("tr[data-account='sim-flaky']")
    deadline = time.monotonic() + 5
    while "cooling down" not in flaky.locator("td.state").inner_text() and time.monotonic() < deadline:
        time.sleep(0.2)
        page.reload()
    state = flaky.locator("td.state").inner_text()
    assert "cooling down" in state and "rate_limited" in state
    assert "rate limit" in flaky.inner_text()
    shoot(page, "console-accounts-unhealthy")

    page.goto("/console")
    assert "sim-flaky" in page.inner_text(".warning")
    shoot(page, "console-overview")

    page.goto("/console/accounts")
    flaky.locator("button:has-text('Disable')").click()
    assert "disabled" in flaky.locator("td.state").inner_text()
    assert "DISABLED" in next(line for line in site.accounts_listing() if line.startswith("sim-flaky"))
    shoot(page, "console-accounts")

    page.goto("/console/users")
    row = page.locator(f"tr[data-email='{user.email}']")
    row.locator("input[name=usd]").fill("2.50")
    row.locator("input[name=note]").fill("thanks for testing")
    row.locator("button:has-text('Grant')").click()
    assert "granted" in page.inner_text(".notice").lower()
    shoot(page, "console-users")
    user_page = user.context.new_page()
    user_page.goto("/dashboard/credit")
    assert "thanks for testing" in user_page.inner_text("#ledger")
    assert "$2.50" in user_page.inner_text("#ledger")

    page.goto("/console/users")
    row.locator("button:has-text('Disable')").click()
    assert refused_within(site, user.key), "a disabled user's keys stop working"
    user_page.goto("/dashboard/keys")
    assert "/login" in user_page.url, "and their sessions end"


def test_codes_made_in_the_console_are_redeemed_on_the_credit_page(site, new_context, user):
    admin = log_in(new_context(), ADMIN, ADMIN_PASSWORD)
    admin.goto("/console/codes")
    admin.fill("input[name=usd]", "3")
    admin.fill("input[name=count]", "2")
    admin.click("button:has-text('Make codes')")
    codes = admin.inner_text("#new-codes").split()
    assert len(codes) == 2 and all(code.startswith("CC-") for code in codes)
    shoot(admin, "console-codes")

    page = user.context.new_page()
    page.goto("/dashboard/credit")
    before = page.inner_text("#balance")
    page.fill("input[name=code]", codes[0].lower())
    page.click("button:has-text('Redeem')")
    assert "redeemed" in page.inner_text(".notice")
    assert before != page.inner_text("#balance")
    assert "redemption" in page.inner_text("#ledger")
    page.fill("input[name=code]", codes[0])
    page.click("button:has-text('Redeem')")
    assert "redeemed already" in page.inner_text(".error")

    admin.goto("/console/codes")
    assert user.email in admin.inner_text("#codes")


def test_prices_edited_in_the_console_reach_the_docs(site, new_context):
    page = log_in(new_context(), ADMIN, ADMIN_PASSWORD)
    page.goto("/console/models")
    row = page.locator("tr[data-model='claude-haiku-4-5-20251001']")
    assert row.locator("input[name=input_price]").input_value() == "1"
    row.locator("input[name=markup]").fill("1.5")
    row.locator("button:has-text('Save')").click()
    assert "changed" in page.inner_text(".notice")
    shoot(page, "console-models")
    try:
        site.wait_reload()
        page.goto("/docs")
        prices = page.inner_text("#model-prices tr[data-model='claude-haiku-4-5-20251001']")
        assert "$1.50" in prices and "$7.50" in prices
    finally:
        page.goto("/console/models")
        row.locator("input[name=markup]").fill("1")
        row.locator("button:has-text('Save')").click()


def test_the_docs_are_the_seed_docs_filled_in_for_this_gateway(site, new_context):
    page = new_context().new_page()
    page.goto("/docs")
    text = page.inner_text("main")
    for stranger in ("your-domain", "claudcode", "api.anthropic.com", "support@example.com"):
        assert stranger not in text
    curls = [line for line in text.splitlines() if line.startswith("curl ")]
    assert len(curls) >= 4 and all(site.url in line for line in curls)
    assert f'base_url="{site.url}"' in text and f'base_url="{site.url}/v1"' in text
    sonnet = page.inner_text("#model-prices tr[data-model='claude-sonnet-4-6']")
    assert "$3.00" in sonnet and "$15.00" in sonnet and "$0.30" in sonnet
    assert page.locator("#model-prices tbody tr").count() >= 10
    assert f"ccgate scaffold my-claude-app --lang python --key $YOUR_KEY --base-url {site.url}" in text
    assert "X-Cache: HIT" in text and "X-No-Cache: true" in text, "the seed's response-cache promises"
    assert not re.search(r"\|\s*(iex|sh|bash)\b|\birm\b", text), "no remote script piped into a shell"
    assert "mcp" not in re.sub(r"MCP connector", "", text).lower(), "no MCP packages are named"


# -- walls between users --------------------------------------------------------------------------

def test_one_user_cannot_touch_another_users_keys_usage_or_ledger(site, new_context, user, operator_ready):
    ask(site, user.key)
    victim_request = ask(site, user.key)._request_id
    intruder = new_context()
    sign_up(intruder, person("intruder"))

    refused = post(intruder, "/dashboard/keys/revoke", {"key_id": user.key_id}, csrf_from="/dashboard/keys")
    assert refused.status == 400 and f"no key {user.key_id}" in refused.text()
    assert ask(site, user.key).content, "the victim's key still works"

    for path in (f"/dashboard/usage?key={user.key_id}", f"/dashboard/usage.csv?key={user.key_id}",
                 "/dashboard/usage", "/dashboard/credit", "/dashboard/keys"):
        body = intruder.request.get(path).text()
        assert victim_request not in body and user.email not in body, path
        assert f'value="{user.key_id}"' not in body and f'data-key-id="{user.key_id}"' not in body, path

    grant = post(intruder, "/console/users/credit", {"email": user.email, "usd": "100"}, csrf_from="/dashboard/keys")
    assert grant.status == 403
    assert intruder.request.get("/console/users").status == 403
    victim = user.context.new_page()
    victim.goto("/dashboard/credit")
    assert "$100" not in victim.inner_text("#ledger")


def test_forms_without_the_right_csrf_token_are_refused(site, new_context, user, operator_ready):
    anonymous = new_context()
    anonymous.request.get("/login")
    no_token = anonymous.request.post("/login", form={"email": ADMIN, "password": ADMIN_PASSWORD}, max_redirects=0)
    assert no_token.status == 403 and "set-cookie" not in no_token.headers

    def keys_named(name: str) -> int:
        return user.context.request.get("/dashboard/keys").text().count(name)

    form = {"name": "forged-key"}
    assert user.context.request.post("/dashboard/keys", form=form).status == 403
    assert user.context.request.post("/dashboard/keys", form={**form, "csrf": "x" * 43}).status == 403
    other = new_context()
    sign_up(other, person())
    foreign = csrf_in(other.request.get("/dashboard/keys").text())
    assert user.context.request.post("/dashboard/keys", form={**form, "csrf": foreign}).status == 403
    assert keys_named("forged-key") == 0
    revoke = user.context.request.post("/dashboard/keys/revoke", form={"key_id": user.key_id}, max_redirects=0)
    assert revoke.status == 403 and ask(site, user.key).content
    assert post(user.context, "/dashboard/keys", form, csrf_from="/dashboard/keys").status == 200
    assert keys_named("forged-key") == 1, "the same form with the page's token is accepted"


def test_html_in_user_supplied_names_is_shown_as_text(site, new_context, user):
    name = '<img src=x onerror="window.pwned=1">'
    page = user.context.new_page()
    page.goto("/dashboard/keys")
    page.fill("input[name=name]", name)
    page.click("button:has-text('Create key')")
    page.goto("/dashboard/keys")
    assert name in page.inner_text("#keys")
    page.goto("/dashboard/usage")
    assert page.locator("img").count() == 0 and page.evaluate("window.pwned") is None

    site.new_user("<b>mallory</b>@example.com")
    admin = log_in(new_context(), ADMIN, ADMIN_PASSWORD)
    admin.goto("/console/users")
    assert "<b>mallory</b>@example.com" in admin.inner_text("#users")
    assert admin.locator("#users b").count() == 0


# -- accounts and sessions ------------------------------------------------------------------------

def test_login_is_throttled_after_repeated_failures(site, new_context, operator_ready):
    email = person("target")
    sign_up(new_context(), email)
    attacker = new_context()
    for _ in range(5):
        wrong = post(attacker, "/login", {"email": email, "password": "guess"}, csrf_from="/login")
        assert wrong.status == 400 and "wrong email or password" in wrong.text()
    blocked = post(attacker, "/login", {"email": email, "password": PASSWORD}, csrf_from="/login")
    assert blocked.status == 429 and "Too many failed attempts" in blocked.text()
    assert not any(cookie["name"] == "ccgate_session" for cookie in attacker.cookies())
    other = post(new_context(), "/login", {"email": ADMIN, "password": ADMIN_PASSWORD}, csrf_from="/login")
    assert other.status == 303, "another email is not throttled"


def test_session_cookie_is_httponly_and_samesite(site, new_context, operator_ready):
    context = new_context()
    response = post(context, "/login", {"email": ADMIN, "password": ADMIN_PASSWORD}, csrf_from="/login")
    cookie = next(c for c in context.cookies() if c["name"] == "ccgate_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/"
    assert not cookie["secure"], "the public URL of this gateway is http"
    assert response.headers["location"] == "/dashboard/keys"
    page = context.new_page()
    page.goto("/dashboard/keys")
    headers = page.request.get("/dashboard/keys").headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["cache-control"] == "no-store"
    assert page.evaluate("document.cookie") == "", "no script can read the session"


def test_https_public_url_makes_the_cookie_secure_and_host_only():
    request = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(gateway=SimpleNamespace(
        settings=SimpleNamespace(public_url="https://gw.example.com")))))
    response = Response()
    set_cookie(response, request, "ccgate_session", "value", 60)
    header = response.headers["set-cookie"]
    assert header.startswith("__Host-ccgate_session=value;")
    assert "Secure" in header and "HttpOnly" in header and "SameSite=lax" in header and "Domain" not in header


def test_changing_the_password_and_logging_out_end_sessions(site, new_context, operator_ready):
    email = person()
    first, second = new_context(), new_context()
    sign_up(first, email)
    log_in(second, email, PASSWORD)
    page = first.new_page()
    page.goto("/dashboard/account")
    page.fill("input[name=current]", PASSWORD)
    page.fill("input[name=new]", "a brand new password")
    page.fill("input[name=confirm]", "a brand new password")
    page.click("button:has-text('Change password')")
    assert "password is changed" in page.inner_text(".notice")
    assert second.request.get("/dashboard/keys", max_redirects=0).status == 303, "the other browser is logged out"
    assert "/login" in log_in(new_context(), email, PASSWORD).url, "the old password no longer works"

    kept = [c for c in first.cookies() if c["name"] == "ccgate_session"]
    page.click("button:has-text('Log out')")
    assert "logged out" in page.inner_text(".notice")
    shoot(page, "login")
    replay = new_context()
    replay.add_cookies(kept)
    assert replay.request.get("/dashboard/keys", max_redirects=0).status == 303, "a logged-out session is dead"
    assert log_in(new_context(), email, "a brand new password").url.endswith("/dashboard/keys")


def test_signup_by_invite_code_and_closed_signup(site, new_context, operator_ready):
    def settings(**form):
        assert post(operator_ready, "/console/settings", {"starting_credit": "5", **form},
                    csrf_from="/console/settings").status == 303

    try:
        settings(signup_mode="invite", invite_code="let-me-in")
        page = new_context().new_page()
        page.goto("/signup")
        assert page.locator("input[name=invite]").count() == 1
        refused = post(new_context(), "/signup", {"email": person(), "password": PASSWORD, "confirm": PASSWORD,
                                                  "invite": "guess"}, csrf_from="/signup")
        assert refused.status == 400 and "invite code is not valid" in refused.text()
        admitted = post(new_context(), "/signup", {"email": person(), "password": PASSWORD, "confirm": PASSWORD,
                                                   "invite": "let-me-in"}, csrf_from="/signup")
        assert admitted.status == 303

        settings(signup_mode="closed")
        page.goto("/signup")
        assert "Sign-up is closed" in page.inner_text("main") and page.locator("form.stack").count() == 0
        closed = post(new_context(), "/signup", {"email": person(), "password": PASSWORD, "confirm": PASSWORD},
                      csrf_from="/login")
        assert closed.status == 400 and "sign-up is closed" in closed.text()
        admin = log_in(new_context(), ADMIN, ADMIN_PASSWORD)
        admin.goto("/console/settings")
        shoot(admin, "console-settings")
    finally:
        settings(signup_mode="open")


def test_operator_caps_bound_the_keys_users_create(site, new_context, operator_ready, user):
    assert post(operator_ready, "/console/settings", {"signup_mode": "open", "starting_credit": "5", "max_rpm": "30"},
                csrf_from="/console/settings").status == 303
    try:
        too_many = post(user.context, "/dashboard/keys", {"name": "greedy", "rpm": "1000"}, csrf_from="/dashboard/keys")
        assert too_many.status == 400 and "rpm may be at most 30" in too_many.text()
        capped = post(user.context, "/dashboard/keys", {"name": "capped"}, csrf_from="/dashboard/keys").text()
        assert "30 rpm" in capped
    finally:
        post(operator_ready, "/console/settings", {"signup_mode": "open", "starting_credit": "5"},
             csrf_from="/console/settings")


def test_usage_filters_and_csv_export(site, new_context, user):
    other_id, other_key = create_key(user.context, "second")
    site.wait_until_key_works(other_key)
    first = ask(site, user.key)._request_id
    second = ask(site, other_key, "claude-opus-4-6")._request_id

    page = user.context.new_page()
    page.goto(f"/dashboard/usage?key={other_id}")
    rows = page.locator("#requests tr[data-request-id]")
    assert [rows.nth(i).get_attribute("data-request-id") for i in range(rows.count())] == [second]
    page.goto("/dashboard/usage?model=claude-haiku-4-5-20251001")
    assert first in page.inner_text("#requests") and second not in page.inner_text("#requests")
    page.goto("/dashboard/usage?from=2020-01-01&to=2020-01-31")
    assert page.locator("#requests").count() == 0
    page.goto("/dashboard/usage?from=2026-13-40")
    assert "must be a date" in page.inner_text(".error")
    assert user.context.request.get("/dashboard/usage.csv?from=2026-02-01&to=2026-01-01").status == 400

    exported = user.context.request.get(f"/dashboard/usage.csv?key={other_id}")
    assert exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.text())))
    assert [row["request_id"] for row in rows] == [second]
    assert rows[0]["key_name"] == "second" and rows[0]["model"] == "claude-opus-4-6" and int(rows[0]["cost_micro"]) > 0


# -- pure parts -----------------------------------------------------------------------------------

def test_bar_chart_scales_stacks_and_escapes():
    svg = bar_chart("Tokens <per> day", ["a<b>", "b"], [Series("In", [30, 0]), Series("Out & more", [10, 5])])
    assert svg.count('<rect class="s0"') == 1 + 1  # one bar segment, one legend swatch
    assert svg.count('<rect class="s1"') == 2 + 1
    assert "a&lt;b&gt;" in svg and "Out &amp; more" in svg and "<b>" not in svg
    bar = r'<rect class="s\d" x="[^"]+" y="[^"]+" width="[^"]+" height="([^"]+)"'
    heights = [float(h) for h in re.findall(bar, svg)]
    assert heights[0] + heights[1] == pytest.approx(164)  # the tallest bar, 40, tops a scale of 4 x 10 on 164 px
    assert heights[2] == pytest.approx(164 * 5 / 40)
    assert re.findall(r'text-anchor="end">([^<]+)<', svg) == ["0", "10", "20", "30", "40"]
    assert [nice_ceiling(v) for v in (0, 0.3, 7, 40, 101)] == [1, 0.5, 10, 50, 200]


def test_login_throttle_backs_off_per_account_and_forgets_old_failures_and_successes():
    now = [0.0]
    throttle = LoginThrottle(MemoryAttempts(clock=lambda: now[0]), clock=lambda: now[0],
                             per_account=Allowance(free=3, window=60, first_wait=1))

    def run(coroutine):
        """On a thread of its own: Playwright's sync API keeps an event loop running on this one."""
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, coroutine).result()

    def wait(email: str, address: str):
        return run(throttle.login_wait(email, address))

    for _ in range(3):
        assert wait("A@example.com", "1.2.3.4") is None
        run(throttle.login_failed("a@example.com", "1.2.3.4"))
    assert wait("a@example.com", "1.2.3.4") == pytest.approx(1)
    assert wait("a@example.com", "5.6.7.8") == pytest.approx(1), "the account is throttled from any address"
    run(throttle.login_failed("a@example.com", "1.2.3.4"))
    assert wait("a@example.com", "1.2.3.4") == pytest.approx(2), "each further failure doubles the wait"
    now[0] = 61
    assert wait("a@example.com", "1.2.3.4") is None
    run(throttle.login_failed("a@example.com", "1.2.3.4"))
    run(throttle.login_succeeded("a@example.com"))
    assert wait("a@example.com", "1.2.3.4") is None


def test_caps_fill_in_and_refuse_key_limits():
    caps = WebSettings(max_rpm=60, max_token_budget=1000)
    assert caps.cap(KeyLimits()) == KeyLimits(rpm=60, token_budget=1000)
    unlimited_rate = KeyLimits(rpm=0, concurrency=0, token_budget=10)
    assert caps.cap(unlimited_rate) == KeyLimits(rpm=60, concurrency=0, token_budget=10)
    with pytest.raises(OperationError, match="token budget may be at most 1000"):
        caps.cap(KeyLimits(token_budget=1001))
    with pytest.raises(OperationError, match="invite code"):
        WebSettings(signup_mode="invite", invite_code="abc").validate()
