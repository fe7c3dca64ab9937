"""Issue 14: once the CLI exits or the admin API answers, the change is in force for the very next
request, not at the server's next reload.  The gateway's reload interval is set to a minute, so only
the read-your-writes path (store.change_marker, http.freshness) can make these pass."""

from __future__ import annotations

import json
import subprocess
import uuid
from dataclasses import dataclass

import pytest
from redis import Redis

from harness import CCGATE, Gateway
from helpers import message_body, post, raw
from services import Deployment


@dataclass
class Rig:
    gateway: Gateway
    admin_key: str

    def fresh_key(self, **limits: int) -> tuple[str, str, str]:
        """(email, key, key id) of a new user's new key, made through the admin API (a CLI run costs
        seconds on a busy machine; the changes under test are still made by the CLI)."""
        email = f"ryw-{uuid.uuid4().hex[:8]}@example.com"
        assert admin(self.gateway, "POST", "/users", self.admin_key, {"email": email})[0] == 201
        code, created = admin(self.gateway, "POST", f"/users/{email}/keys", self.admin_key, limits)
        assert code == 201, created
        return email, created["key"], created["id"]


@pytest.fixture(scope="module")
def rig(sim, tmp_path_factory):
    gateway = Gateway(tmp_path_factory.mktemp("ryw"), extra_env={"CCGATE_RELOAD_INTERVAL": "60"})
    gateway.add_account("ryw-main", f"sk-ant-ryw-{uuid.uuid4().hex[:8]}", sim.url)
    root = f"root-{uuid.uuid4().hex[:8]}@example.com"
    gateway.new_user(root, "--admin")
    admin_key = gateway.admin(lambda ops: ops.create_key(root)).plaintext
    gateway.start()
    yield Rig(gateway, admin_key)
    gateway.stop()


def status(gateway: Gateway, key: str) -> int:
    return post(gateway, key, message_body())[0]


def admin(gateway: Gateway, method: str, path: str, key: str, payload: dict) -> tuple[int, dict]:
    code, _, body = raw(gateway, method, "/admin/api" + path, body=json.dumps(payload).encode(),
                        headers={"x-api-key": key, "content-type": "application/json"})
    return code, body


def test_a_key_revoked_by_the_cli_is_refused_at_once(rig):
    _, key, key_id = rig.fresh_key()
    assert status(rig.gateway, key) == 200
    rig.gateway.cli("keys", "revoke", key_id)
    assert status(rig.gateway, key) == 401


def test_a_user_disabled_by_the_cli_is_refused_at_once(rig):
    email, key, _ = rig.fresh_key()
    assert status(rig.gateway, key) == 200
    rig.gateway.cli("users", "disable", email)
    assert status(rig.gateway, key) == 401


def test_a_limit_lowered_by_the_cli_holds_at_once(rig):
    _, key, key_id = rig.fresh_key(rpm=100)
    assert status(rig.gateway, key) == 200
    rig.gateway.cli("keys", "update", key_id, "--rpm", "1")
    assert status(rig.gateway, key) == 429


def test_an_account_disabled_by_the_cli_takes_no_more_requests(rig):
    _, key, _ = rig.fresh_key()
    rig.gateway.cli("accounts", "disable", "ryw-main")
    try:
        assert status(rig.gateway, key) == 503
    finally:
        rig.gateway.cli("accounts", "enable", "ryw-main")
    assert status(rig.gateway, key) == 200


def test_changes_through_the_admin_api_hold_when_it_answers(rig):
    gateway, admin_key = rig.gateway, rig.admin_key
    email, key, key_id = rig.fresh_key(rpm=100)
    assert status(gateway, key) == 200
    assert admin(gateway, "PATCH", f"/keys/{key_id}", admin_key, {"rpm": 1})[0] == 200
    assert status(gateway, key) == 429
    assert admin(gateway, "DELETE", f"/keys/{key_id}", admin_key, {})[0] == 200
    assert status(gateway, key) == 401
    other_email, other, _ = rig.fresh_key()
    assert status(gateway, other) == 200
    assert admin(gateway, "PATCH", f"/users/{other_email}", admin_key, {"disabled": True})[0] == 200
    assert status(gateway, other) == 401


# -- several processes: the Redis announcement, confirmed ---------------------------------------------

def test_a_revocation_from_another_host_is_confirmed_by_every_worker_before_the_cli_exits(sim, tmp_path):
    """Three workers on PostgreSQL and Redis; the CLI runs with a data directory of its own (another
    host: the change marker cannot help), so only the confirmed announcement makes the key fail at once."""
    env = {**Deployment.shared().gateway_env(), "CCGATE_RELOAD_INTERVAL": "60", "CCGATE_SECRET": "s" * 64}
    gateway = Gateway(tmp_path / "gateway", extra_env=env, workers=3)
    gateway.add_account("main", "sk-ant-ryw-" + uuid.uuid4().hex[:6], sim.url)
    gateway.start()
    try:
        email = f"far-{uuid.uuid4().hex[:8]}@example.com"
        key = gateway.new_key(email)
        [key_id] = gateway.key_ids(email)
        elsewhere = {**gateway.env, "CCGATE_DATA_DIR": str(tmp_path / "elsewhere")}
        result = subprocess.run([*CCGATE, "keys", "revoke", key_id], env=elsewhere, capture_output=True, text=True,
                                timeout=60, check=True)
        assert "confirmed" not in result.stderr, result.stderr  # no warning: every worker confirmed
        assert [status(gateway, key) for _ in range(12)] == [401] * 12
        redis = Redis.from_url(env["CCGATE_REDIS_URL"])
        acks = redis.keys(env["CCGATE_REDIS_PREFIX"] + "config-ack:*")
        assert acks and all(redis.scard(ack) == 3 for ack in acks), "each of the three workers confirmed each change"
        redis.close()
    finally:
        gateway.stop()
