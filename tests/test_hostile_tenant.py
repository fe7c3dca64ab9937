"""Issue 14: a hostile tenant drawing every fault the simulator can inject does not take the shared
account from the other tenants.  One gateway, ONE account (any cooldown or disable would show as a
failure of the other tenant), the real simulator steered by `[[sim:fault=KIND]]` prompt directives."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import Gateway
from helpers import message_body, post, raw

HOSTILE_REQUESTS = 200
HOSTILE_CONCURRENCY = 8
# Every fault kind of ccgate.sim.faults; the midstream ones need a stream.
FAULTS = ["400", "401", "403", "429", "500", "529", "reset", "slow-first-byte", "midstream-error",
          "midstream-reset"]
MIDSTREAM = {"midstream-error", "midstream-reset"}


@pytest.fixture
def lone_account(sim, tmp_path):
    gateway = Gateway(tmp_path / "gateway")
    upstream_key = f"sk-ant-shared-{uuid.uuid4().hex[:8]}"
    gateway.add_account("shared", upstream_key, sim.url)
    gateway.start()
    yield gateway, upstream_key
    gateway.stop()


def hostile_request(gateway: Gateway, key: str, index: int) -> int:
    kind = FAULTS[index % len(FAULTS)]
    text = f"[[sim:tokens=20]] [[sim:fault={kind}]] attack {index}"
    if index % 7 == 3 and kind not in MIDSTREAM:  # count_tokens draws the same faults
        body = json.dumps({"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": text}]}).encode()
        return raw(gateway, "POST", "/v1/messages/count_tokens", body=body,
                   headers={"x-api-key": key, "content-type": "application/json"})[0]
    body = message_body(max_tokens=64, text=text, stream=kind in MIDSTREAM or index % 2 == 0)
    return post(gateway, key, body)[0]


def test_a_hostile_tenant_drawing_every_fault_leaves_the_others_at_full_success(lone_account, sim):
    gateway, upstream_key = lone_account
    hostile = gateway.new_key(f"hostile-{uuid.uuid4().hex[:6]}@example.com")
    victim = gateway.new_key(f"victim-{uuid.uuid4().hex[:6]}@example.com")
    done = False

    def flood() -> list[int]:
        nonlocal done
        try:
            with ThreadPoolExecutor(HOSTILE_CONCURRENCY) as pool:
                return list(pool.map(lambda index: hostile_request(gateway, hostile, index), range(HOSTILE_REQUESTS)))
        finally:
            done = True

    def victim_traffic() -> list[int]:
        statuses: list[int] = []
        index = 0
        while not done or index < 30:
            statuses.append(post(gateway, victim, message_body(text=f"honest work {index}"))[0])
            index += 1
        return statuses

    started = time.monotonic()
    with ThreadPoolExecutor(3) as runner:
        attack = runner.submit(flood)
        victims = [runner.submit(victim_traffic) for _ in range(2)]
        hostile_statuses = attack.result(timeout=60)
        victim_statuses = [status for future in victims for status in future.result(timeout=60)]
    assert time.monotonic() - started < 45
    assert len(hostile_statuses) == HOSTILE_REQUESTS and any(status != 200 for status in hostile_statuses)
    assert victim_statuses and set(victim_statuses) == {200}, \
        f"the other tenant saw {len(victim_statuses) - victim_statuses.count(200)} failures: {set(victim_statuses)}"
    faults = sim.stats()["faults"]
    assert all(faults.get(kind, 0) > 0 for kind in FAULTS), faults
    gateway.wait_reload()  # a disable is written, and health reported, within a reload interval
    assert gateway.query("SELECT enabled FROM accounts WHERE name = %s", "shared") == [(1,)]
    cooldowns = gateway.query("SELECT s.cooldown_until_ms, s.last_error FROM account_status s "
                              "JOIN accounts a ON a.id = s.account_id WHERE a.name = %s", "shared")
    assert cooldowns and all(until is None for until, _ in cooldowns), cooldowns
