"""Issue 4: the admin JSON API is the CLI's operations, behind an admin key, described by OpenAPI."""

from __future__ import annotations

import json

import anthropic
from test_messages import raw


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

        status, _, refused = admin(gateway, "PATCH", "/settings", admin_key, {"signup_mode": "invite", "invite_code": "ab"})
        assert status == 400 and "invite code" in refused["detail"]
        assert admin(gateway, "PATCH", "/settings", admin_key, {"signup_mode": "sometimes"})[0] == 422
        assert admin(gateway, "PATCH", "/settings", admin_key, {"max_rpm": -1})[0] == 422
        assert admin(gateway, "GET", "/settings", admin_key)[2] == changed, "a refused change changes nothing"
    finally:
        admin(gateway, "PATCH", "/settings", admin_key, {"max_rpm": before["max_rpm"] or 0,
                                                           "starting_credit_usd": before["starting_credit_micro"] / 1e6})


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
