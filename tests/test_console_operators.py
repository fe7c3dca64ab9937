"""The operator console for issues 13 and 15, over plain HTTP with a session cookie: the reports page and
its CSV, a user's overdraft, a model's price modifiers, and the alert webhooks page."""

from __future__ import annotations

import pytest

from helpers import FormSession


@pytest.fixture
def console(gateway, email) -> FormSession:
    operator = "op-" + email
    gateway.new_user(operator, "--admin", "--password", "operator-password-1")
    session = FormSession(gateway.url)
    session.post_form("/login", "/login", {"email": operator, "password": "operator-password-1"})
    status, _, page = session.open("/console/reports")
    assert status == 200 and "<h1>Console</h1>" in page
    return session


def test_reports_page_and_csv(console):
    status, _, page = console.open("/console/reports?by=account&from=2026-01-01&to=2026-12-31")
    assert status == 200 and 'id="report"' in page and "/console/reports.csv?by=account&amp;from=2026-01-01" in page
    status, headers, body = console.open("/console/reports.csv?by=session&from=&to=")
    assert status == 200 and headers["content-type"].startswith("text/csv")
    assert body.startswith("session,requests,input_tokens,")
    status, _, page = console.open("/console/reports?by=week")
    assert status == 400 and "a report is by one of" in page
    assert console.open("/console/reports.csv?by=day&from=2026-01-02&to=2026-01-01")[0] == 400


def test_overdraft_from_the_users_page(gateway, console, email):
    gateway.new_user(email, "--credit-usd", "1")
    status, _, _ = console.post_form("/console/users/overdraft", "/console/users", {"email": email, "overdraft": "4"})
    assert status == 200
    assert gateway.query("select overdraft_micro from users where email = %s", email) == [(4_000_000,)]
    status, _, page = console.post_form("/console/users/overdraft", "/console/users",
                                        {"email": email, "overdraft": "-1"})
    assert status == 400 and "an overdraft is $0 to $1,000,000" in page
    assert gateway.query("select overdraft_micro from users where email = %s", email) == [(4_000_000,)]
    console.post_form("/console/users/overdraft", "/console/users", {"email": email, "overdraft": ""})
    assert gateway.query("select overdraft_micro from users where email = %s", email) == [(None,)]


def test_price_modifiers_from_the_models_page(gateway, console):
    model = "claude-opus-4-6"
    [(input_price, output_price, write_5m, write_1h, read, us_geo)] = gateway.query(
        "select input_price, output_price, cache_write_5m_price, cache_write_1h_price, cache_read_price, us_geo_bp "
        "from models where id = %s", model)
    page = console.open("/console/models")[2]
    assert 'name="us_geo"' in page and 'name="fast_input"' in page and 'name="web_search_usd"' in page
    form = {"model_id": model, "input_price": str(input_price / 1e6), "output_price": str(output_price / 1e6),
            "cache_write_5m_price": str(write_5m / 1e6), "cache_write_1h_price": str(write_1h / 1e6),
            "cache_read_price": str(read / 1e6), "markup": "1", "enabled": "on"}
    try:
        status, _, page = console.post_form("/console/models", "/console/models", {**form, "us_geo": "0"})
        assert status == 400 and "us_geo: a multiplier above 0" in page
        assert console.post_form("/console/models", "/console/models", {**form, "us_geo": "1.25"})[0] == 200
        assert gateway.query("select us_geo_bp from models where id = %s", model) == [(12_500,)]
    finally:
        console.post_form("/console/models", "/console/models", {**form, "us_geo": str(us_geo / 10_000)})


def test_alert_webhooks_page(console):
    status, _, page = console.post_form("/console/alerts", "/console/alerts",
                                        {"name": "pager", "url": "http://127.0.0.1:9/hook/secret-token",
                                         "kind": "generic", "secret": "s3cret"})
    assert status == 200 and 'data-webhook="pager"' in page and "secret-token" not in page and "s3cret" not in page
    status, _, page = console.post_form("/console/alerts", "/console/alerts",
                                        {"name": "pager", "url": "http://127.0.0.1:9/", "kind": "generic"})
    assert status == 400 and "exists already" in page
    _, _, page = console.post_form("/console/alerts/enabled", "/console/alerts", {"name": "pager", "enabled": "0"})
    assert "Enable</button>" in page and 'id="deliveries"' in page
    _, _, page = console.post_form("/console/alerts/remove", "/console/alerts", {"name": "pager"})
    assert 'data-webhook="pager"' not in page
    status, _, page = console.post_form("/console/alerts/remove", "/console/alerts", {"name": "pager"})
    assert status == 400 and "no webhook pager" in page
