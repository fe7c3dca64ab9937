"""Issue 14 item 3: client headers reach the upstream only by the allowlist in relay/headers.py."""

from __future__ import annotations

import json

from ccgate.relay.headers import upstream_headers
from test_messages import raw

KEPT = {
    "anthropic-version": "2023-06-01", "anthropic-beta": "claude-code-20250219",
    "anthropic-dangerous-direct-browser-access": "true", "content-type": "application/json",
    "accept": "application/json", "user-agent": "claude-cli/2.1.200 (external, cli)",
    "x-claude-code-session-id": "1b4e28ba", "x-stainless-lang": "python", "x-stainless-retry-count": "0",
    "x-app": "cli",
}
DROPPED = {
    "connection": "keep-alive, x-foo", "keep-alive": "timeout=5", "te": "trailers", "upgrade": "h2c",
    "proxy-authorization": "Basic eA==", "x-forwarded-for": "10.0.0.1", "x-forwarded-host": "evil",
    "x-forwarded-proto": "http", "forwarded": "for=10.0.0.1", "x-real-ip": "10.0.0.2",
    "true-client-ip": "10.0.0.3", "cf-connecting-ip": "10.0.0.4", "origin": "https://evil.example",
    "referer": "https://evil.example/", "cookie": "session=abc", "x-sim-fault": "500",
    "x-sim-delay-ms": "10", "authorization": "Bearer client-own-token", "x-api-key": "client-own-key",
    "x-no-cache": "1", "x-custom": "anything",
}


def test_only_allowlisted_headers_are_forwarded_with_the_accounts_key():
    client = [(name.encode(), value.encode()) for name, value in {**KEPT, **DROPPED}.items()]
    forwarded = upstream_headers(client, "sk-ant-account")
    assert forwarded == {**KEPT, "x-api-key": "sk-ant-account"}


def test_repeated_beta_headers_travel_as_one_list():
    client = [(b"anthropic-beta", b"a-1"), (b"anthropic-beta", b"b-2")]
    assert upstream_headers(client, "k")["anthropic-beta"] == "a-1,b-2"


def test_hostile_headers_never_reach_the_simulator(gateway, sim, api_key):
    body = json.dumps({"model": "claude-haiku-4-5", "max_tokens": 8,
                       "messages": [{"role": "user", "content": "hi"}]}).encode()
    sim.clear()
    sent = {name: value for name, value in {**KEPT, **DROPPED}.items()
            if name not in ("connection", "keep-alive", "te", "upgrade", "x-api-key", "authorization")}
    status, _, payload = raw(gateway, "POST", "/v1/messages", body=body,
                             headers={**sent, "x-api-key": api_key, "authorization": f"Bearer {api_key}"})
    assert status == 200, payload  # x-sim-fault: 500 would have failed it had it been forwarded
    seen = sim.requests()[-1]["headers"]
    for name in DROPPED.keys() - {"x-api-key"}:
        assert name not in seen, name
    assert seen["x-api-key"] == "sk-ant-sim-main"
    assert api_key not in json.dumps(seen)
    for name in ("anthropic-beta", "x-claude-code-session-id", "x-stainless-lang", "x-app", "user-agent"):
        assert seen[name] == KEPT[name]
