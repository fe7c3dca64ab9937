"""Issue 4: the admin JSON API is the CLI's operations, behind an admin key, described by OpenAPI."""

from __future__ import annotations

import json
import time

import anthropic

from helpers import raw


def admin(gateway, method: str, path: str, key: str, payload: dict | None = None):
    body = json.dumps(payload).encode() if payload is not None else None
    return raw(gateway, method, "/admin/api" + path, body=body,
               headers={"x-api-key": key, "content-type": "application/json"})


def test_only_admin_keys_get_in(gateway, api_key, email):
    assert admin(gateway, "GET", "/users", api_key)[0] == 403
    assert admin(gateway, "GET", "/users", "cc_user_wrong")[0] == 401
    assert raw(gateway, "GET", "/admin/api/users")[0] == 401


def test_admin_manages_users_keys_credit_and_usage(gateway, email):
    gateway.new_user("root-" + email, "--admin")
    admin_key = gateway.new_key("root-" + email)
    status, _, created = admin(gateway, "POST", "/users", admin_key, {"email": email, "credit_usd": 1})
    assert status == 201
    status, _, key = admin(gateway, "POST", f"/users/{email}/keys", admin_key, {"name": "ci", "rpm": 10})
    assert status == 201 and key["key"].startswith("cc_user_")
    gateway.wait_until_key_works(key["key"])
    message = anthropic.Anthropic(api_key=key["key"], base_url=gateway.url).messages.create(
        model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    status, _, granted = admin(gateway, "POST", f"/users/{email}/credit", admin_key, {"usd": 2, "note": "bonus"})
    assert status == 200
    status, _, ledger = admin(gateway, "GET", f"/users/{email}/ledger", admin_key)
    assert [entry["kind"] for entry in ledger] == ["grant", "request", "grant"]
    assert granted["balance_micro"] == sum(entry["amount_micro"] for entry in ledger)
    status, _, keys = admin(gateway, "GET", f"/users/{email}/keys", admin_key)
    assert keys[0]["rpm"] == 10 and "key_hash" not in keys[0] and key["key"] not in json.dumps(keys)
    status, _, usage = admin(gateway, "GET", f"/usage?email={email}", admin_key)
    assert usage[0]["requests"] == 1 and usage[0]["model"] == "claude-haiku-4-5-20251001"
    assert usage[0]["output_tokens"] == message.usage.output_tokens
    assert admin(gateway, "DELETE", f"/keys/{key['id']}", admin_key)[0] == 200
    gateway.wait_reload()
    status, _, _ = raw(gateway, "GET", "/v1/models", headers={"x-api-key": key["key"]})
    assert status == 401


def test_bad_admin_input_is_a_clear_error(gateway, email):
    gateway.new_user("root-" + email, "--admin")
    admin_key = gateway.new_key("root-" + email)
    status, _, payload = admin(gateway, "POST", "/users", admin_key, {"email": "nope"})
    assert status == 400 and "not an email" in payload["detail"]
    assert admin(gateway, "POST", "/users/nobody@example.com/keys", admin_key, {})[0] == 404
    assert admin(gateway, "POST", "/codes", admin_key, {"usd": -1})[0] == 422
    status, _, payload = admin(gateway, "PATCH", "/keys/key_missing", admin_key, {"rpm": 5})
    assert status == 404


def test_admin_reads_and_changes_the_dashboard_settings(gateway, email):
    gateway.new_user("root-" + email, "--admin")
    admin_key = gateway.new_key("root-" + email)
    status, _, before = admin(gateway, "GET", "/settings", admin_key)
    assert status == 200 and before["signup_mode"] in ("open", "invite", "closed")
    try:
        status, _, changed = admin(gateway, "PATCH", "/settings", admin_key, {"max_rpm": 30, "starting_credit_usd": 2})
        assert status == 200 and (changed["max_rpm"], changed["starting_credit_micro"]) == (30, 2_000_000)
        assert changed["signup_mode"] == before["signup_mode"], "what is not given stays as it was"
        assert "max rpm: 30" in gateway.cli("settings", "show").stdout, "the CLI reads the same settings"

        status, _, refused = admin(
            gateway, "PATCH", "/settings", admin_key, {"signup_mode": "invite", "invite_code": "ab"})
        assert status == 400 and "invite code" in refused["detail"]
        assert admin(gateway, "PATCH", "/settings", admin_key, {"signup_mode": "sometimes"})[0] == 422
        assert admin(gateway, "PATCH", "/settings", admin_key, {"max_rpm": -1})[0] == 422
        assert admin(gateway, "GET", "/settings", admin_key)[2] == changed, "a refused change changes nothing"
    finally:
        restored = {"max_rpm": before["max_rpm"] or 0, "starting_credit_usd": before["starting_credit_micro"] / 1e6}
        admin(gateway, "PATCH", "/settings", admin_key, restored)


def test_openapi_describes_every_admin_operation(gateway):
    from ccgate.http.admin import create_admin_api

    gateway.new_user("openapi-root@example.com", "--admin")
    status, _, schema = raw(gateway, "GET", "/admin/api/openapi.json",
                            headers={"x-api-key": gateway.new_key("openapi-root@example.com")})
    assert status == 200
    described = {(path, method.upper()) for path, item in schema["paths"].items() for method in item}
    routes = {(route.path, method) for route in create_admin_api().routes
              if hasattr(route, "methods") and route.path not in ("/openapi.json", "/docs", "/docs/oauth2-redirect",
                                                                   "/redoc")
              for method in route.methods if method != "HEAD"}
    assert routes and routes <= described
    for item in schema["paths"].values():
        for operation in item.values():
            assert operation["summary"]
    for operation in ("/users", "/users/{email}/credit", "/users/{email}/keys", "/keys/{key_id}", "/codes",
                      "/usage", "/accounts", "/accounts/{name}", "/users/{email}/ledger", "/settings"):
        assert operation in schema["paths"]


def test_admin_ledger_check_reports_and_csv(gateway, email):
    gateway.new_user("root-" + email, "--admin")
    admin_key = gateway.new_key("root-" + email)
    key = gateway.new_key(email)
    anthropic.Anthropic(api_key=key, base_url=gateway.url, max_retries=0).messages.create(
        model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-claude-code-session-id": "admin-" + email})
    status, _, check = admin(gateway, "GET", "/ledger/check", admin_key)
    assert status == 200 and check["ok"] is (check["findings"] == [])
    assert check["summary"].startswith("ledger check:") and check["balances"] >= 0 and check["debits"] >= 0
    rows = []
    for _ in range(50):  # the usage row is committed just after the answer
        status, _, rows = admin(gateway, "GET", "/reports?by=session", admin_key)
        if any(row["group"] == "admin-" + email for row in rows):
            break
        time.sleep(0.1)
    mine = next(row for row in rows if row["group"] == "admin-" + email)
    assert mine["requests"] == 1 and mine["counts"]["output_tokens"] > 0 and mine["cost_micro"] > 0
    status, headers, body = admin(gateway, "GET", "/reports?by=account&format=csv", admin_key)
    assert status == 200 and headers["content-type"].startswith("text/csv")
    assert body.decode().startswith("account,requests,input_tokens,") and "sim-main," in body.decode()
    for query, message in [("by=week", "a report is by one of"), ("by=day&from=2026-01-02&to=2026-01-01", "is after"),
                           ("by=day&from=yesterday", "not a date")]:
        status, _, payload = admin(gateway, "GET", "/reports?" + query, admin_key)
        assert status == 400 and message in payload["detail"], query


def test_admin_sets_overdraft_and_price_modifiers_and_bad_input_changes_nothing(gateway, email):
    gateway.new_user("root-" + email, "--admin")
    admin_key = gateway.new_key("root-" + email)
    gateway.new_user(email, "--credit-usd", "1")
    status, _, answer = admin(gateway, "PATCH", f"/users/{email}", admin_key, {"overdraft_usd": 3})
    assert status == 200 and answer["overdraft_micro"] == 3_000_000
    for payload, message in [({"overdraft_usd": -1}, "an overdraft is $0 to $1,000,000"),
                             ({"overdraft_usd": 2_000_000, "disabled": True}, "an overdraft is"),
                             ({}, "nothing to change")]:
        status, _, refused = admin(gateway, "PATCH", f"/users/{email}", admin_key, payload)
        assert status == 400 and message in refused["detail"], payload
    users = {user["email"]: user for user in admin(gateway, "GET", "/users", admin_key)[2]}
    assert users[email]["overdraft_micro"] == 3_000_000 and not users[email]["disabled"]
    assert admin(gateway, "PATCH", f"/users/{email}", admin_key, {"overdraft_usd": None})[2]["overdraft_micro"] is None

    status, _, model = admin(gateway, "PATCH", "/models/claude-haiku-4-5-20251001", admin_key,
                             {"modifiers": {"batch": 0.4, "web_fetch_usd": 0.001}})
    assert status == 200 and model["batch_bp"] == 4_000 and model["web_fetch_price_micro"] == 1_000
    status, _, refused = admin(gateway, "PATCH", "/models/claude-haiku-4-5-20251001", admin_key,
                               {"modifiers": {"batch": 0.5, "us_geo": 0}})
    assert status == 400 and "us_geo: a multiplier above 0" in refused["detail"]
    assert admin(gateway, "PATCH", "/models/claude-nothing", admin_key, {"modifiers": {"batch": 0.5}})[0] == 404
    models = {model["id"]: model for model in admin(gateway, "GET", "/models", admin_key)[2]}
    assert models["claude-haiku-4-5-20251001"]["batch_bp"] == 4_000, "a refused change changes nothing"
    admin(gateway, "PATCH", "/models/claude-haiku-4-5-20251001", admin_key,
          {"modifiers": {"batch": 0.5, "web_fetch_usd": 0}})
