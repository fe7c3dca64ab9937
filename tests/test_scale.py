"""Issue 8: many processes on PostgreSQL and Redis keep one set of rules, and survive their faults."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import CCGATE, Gateway, Simulator
from helpers import key_status, message_body, post, raw
from services import Deployment, PostgresServer, RedisServer, wait_until


def scaled(tmp_path, sim: Simulator, **env) -> Gateway:
    """Three `ccgate serve` workers on their own PostgreSQL database and Redis namespace."""
    gateway = Gateway(tmp_path / "gateway", extra_env={**Deployment.shared().gateway_env(), **env}, workers=3)
    gateway.add_account("main", "sk-ant-scale-" + uuid.uuid4().hex[:6], sim.url)
    return gateway.start()


def workers_of(gateway: Gateway, expected: int = 3) -> list[int]:
    """Process ids of the serving workers (children of the `ccgate serve` supervisor), once all are up."""
    def children() -> list[int]:
        out = subprocess.run(["ps", "-ww", "--ppid", str(gateway.process.pid), "-o", "pid=,args="],
                             capture_output=True, text=True).stdout
        return [int(line.split()[0]) for line in out.splitlines() if "spawn_main" in line]

    wait_until(lambda: len(children()) == expected, timeout=20)
    return children()


def serving_worker(gateway: Gateway, timeout: float = 10.0) -> int:
    """A worker process holding an accepted client connection on the gateway's port."""
    def serving() -> int | None:
        established = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in open(table).read().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == gateway.port:
                    established.add(fields[9])  # the socket's inode
        for pid in workers_of(gateway):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}").removeprefix("socket:[").rstrip("]") in established:
                        return pid
        return None

    assert wait_until(lambda: serving() is not None, timeout=timeout), "no worker took a connection"
    return serving()


def metric(gateway: Gateway, name: str) -> float:
    with urllib.request.urlopen(gateway.url + "/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


@pytest.fixture
def stack(sim, tmp_path):
    gateway = scaled(tmp_path, sim)
    yield gateway
    gateway.stop()


def test_workers_above_one_need_redis(tmp_path):
    gateway = Gateway(tmp_path / "lonely", workers=2)
    result = subprocess.run([*CCGATE, "serve", "--workers", "2", "--port", "1"], env={
        **gateway.env, "CCGATE_REDIS_URL": ""}, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "needs CCGATE_REDIS_URL" in result.stderr


def test_migrate_brings_postgresql_to_the_newest_schema():
    url = Deployment.shared().postgres.new_database()
    result = subprocess.run([*CCGATE, "migrate"], env={**os.environ, "CCGATE_DATABASE_URL": url},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    tables = Deployment.shared().postgres.psql(url.rsplit("/", 1)[1], "select tablename from pg_tables")
    assert {"users", "api_keys", "usage", "ledger", "accounts", "models"} <= {row[0] for row in tables}


def test_rpm_is_exact_across_three_processes(stack):
    assert len(workers_of(stack)) == 3
    key = stack.new_key("rpm@example.com", "--rpm", "12")
    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(lambda i: post(stack, key, message_body(text=f"n{i}"))[0], range(30)))
    assert statuses.count(200) == 12 and statuses.count(429) == 18


def test_a_cooldown_learned_by_one_process_is_known_to_all(stack, sim):
    spare_key = "sk-ant-spare-" + uuid.uuid4().hex[:6]
    stack.add_account("spare", spare_key, sim.url, "--priority", "1")
    stack.wait_reload()
    sim.fault(spare_key, "429", retry_after=30)
    key = stack.new_key("cool@example.com")
    assert post(stack, key, message_body(text="first"))[0] == 200
    assert sim.stats()["by_key"][spare_key] == 1
    time.sleep(1.0)  # the cooldown travels by Redis pub/sub; give a busy machine time to deliver it
    assert all(post(stack, key, message_body(text=f"then {i}"))[0] == 200 for i in range(20))
    assert sim.stats()["by_key"][spare_key] == 1, "no process tried the cooling account again"
    stack.wait_reload()
    spare = next(line for line in stack.accounts_listing() if line.startswith("spare"))
    assert "COOLING" in spare and "rate_limited" in spare


@pytest.mark.parametrize("reload_interval", ["0.2", "60"], ids=["announced-and-checked", "announced-only"])
def test_a_revoked_key_is_refused_by_every_process_within_a_second(sim, tmp_path, reload_interval):
    """With a database check once a minute, only the announcement through Redis can make it."""
    gateway = scaled(tmp_path, sim, CCGATE_RELOAD_INTERVAL=reload_interval)
    try:
        key = gateway.new_key("revoke@example.com")
        [key_id] = gateway.key_ids("revoke@example.com")
        assert all(post(gateway, key, message_body(text=f"r{i}"))[0] == 200 for i in range(6))
        gateway.admin(lambda ops: ops.revoke_key(key_id))
        time.sleep(1.0)
        statuses = [post(gateway, key, message_body(text=f"after{i}"))[0] for i in range(12)]
        assert statuses == [401] * 12
    finally:
        gateway.stop()


def test_kill_9_of_a_worker_loses_no_billed_request_and_leaks_no_lease(tmp_path):
    slow_sim = Simulator().start("--tokens-per-sec", "40")
    gateway = scaled(tmp_path, slow_sim, CCGATE_LEASE_TTL="2")
    try:
        key = gateway.new_key("kill@example.com", "--concurrency", "20")

        def stream(i: int) -> tuple[int, object, bytes] | None:
            try:
                return post(gateway, key, message_body(max_tokens=200, text=f"[[sim:tokens=80]] {i}", stream=True))
            except (http.client.HTTPException, OSError):
                return None  # its worker died under it

        with ThreadPoolExecutor(12) as pool:
            streams = [pool.submit(stream, i) for i in range(12)]
            # One worker may accept every connection of a burst: kill one that is serving streams.
            victim = serving_worker(gateway)
            time.sleep(0.3)
            os.kill(victim, signal.SIGKILL)
            results = [future.result() for future in streams]
        completed = [result[1]["request-id"] for result in results
                     if result and result[0] == 200 and result[2].rstrip().endswith(b'{"type":"message_stop"}')]
        assert completed, "some streams finished on the surviving workers"
        assert len(completed) < len(results), "the killed worker's streams never finished"
        for request_id in completed:
            assert gateway.query("select output_tokens from usage where request_id = %s", request_id) == [(80,)]
        assert wait_until(lambda: key_status(gateway, key)["rate_limit"]["in_flight"] == 0, timeout=6), \
            "the dead worker's leases expire with their TTL"
        assert len(workers_of(gateway)) == 3, "the supervisor replaced the dead worker"
    finally:
        gateway.stop()
        slow_sim.stop()


def test_redis_stopped_and_restarted_under_load(sim, tmp_path):
    redis = RedisServer().start()
    env = {**Deployment.shared().gateway_env(), "CCGATE_REDIS_URL": redis.url}
    gateway = Gateway(tmp_path / "gateway", extra_env=env, workers=1)
    gateway.add_account("main", "sk-ant-redis-" + uuid.uuid4().hex[:6], sim.url)
    gateway.start()
    try:
        key = gateway.new_key("redis@example.com", "--rpm", "1000")
        statuses: list[int] = []

        def load() -> None:
            for i in range(60):
                statuses.append(post(gateway, key, message_body(text=f"load {i}"))[0])
                time.sleep(0.05)

        worker = threading.Thread(target=load)
        worker.start()
        time.sleep(0.5)
        redis.stop()
        assert wait_until(lambda: metric(gateway, "ccgate_state_degraded") == 1.0, timeout=5)
        status, _, ready = raw(gateway, "GET", "/readyz")
        assert status == 200 and ready["redis"] == "degraded"
        time.sleep(1.0)
        redis.process = None
        redis.start()
        worker.join(timeout=60)
        assert statuses == [200] * 60, "served throughout, on per-process limits while Redis was away"
        assert wait_until(lambda: metric(gateway, "ccgate_state_degraded") == 0.0, timeout=10)  # probe + grace
        assert raw(gateway, "GET", "/readyz")[2]["redis"] == "ok"
        limited = gateway.new_key("after@example.com", "--rpm", "2")
        results = [post(gateway, limited, message_body(text=f"x{i}"))[0] for i in range(3)]
        assert results == [200, 200, 429], "limits are enforced through Redis again"
    finally:
        gateway.stop()
        redis.stop()


def test_postgresql_unreachable_means_503_then_service_resumes(sim, tmp_path):
    postgres = PostgresServer().start()
    database = postgres.new_database()
    gateway = Gateway(tmp_path / "gateway", extra_env={"CCGATE_DATABASE_URL": database}, workers=1)
    gateway.add_account("main", "sk-ant-pg-" + uuid.uuid4().hex[:6], sim.url)
    gateway.start()
    try:
        key = gateway.new_key("pg@example.com")
        assert post(gateway, key, message_body(text="before"))[0] == 200
        postgres.stop()
        assert wait_until(lambda: metric(gateway, "ccgate_database_up") == 0.0, timeout=5)
        status, headers, payload = post(gateway, key, message_body(text="during"))
        assert status == 503 and payload["error"]["type"] == "overloaded_error" and headers["retry-after"]
        assert raw(gateway, "GET", "/readyz")[0] == 503
        postgres.resume()
        assert wait_until(lambda: raw(gateway, "GET", "/readyz")[0] == 200, timeout=15)
        status, headers, _ = post(gateway, key, message_body(text="after"))
        assert status == 200
        assert postgres.psql(database.rsplit("/", 1)[1], "select count(*) from usage where status = 200") == [["2"]]
    finally:
        gateway.stop()
        postgres.stop()
