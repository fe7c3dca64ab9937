"""Real processes on real sockets: the simulator and gateways started as their users start them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from admin import cli_arguments, run_operation, settings_of
from ccgate.cli.accounts import account_line, account_secret
from ccgate.cli.keys import limits_of
from ccgate.ops import OperationError, Operations

T = TypeVar("T")

CCGATE = [sys.executable, "-m", "ccgate.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on port {port} after {timeout}s")


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Simulator:
    """`ccgate sim` in its own process."""

    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *extra: str) -> Simulator:
        self.process = subprocess.Popen([*CCGATE, "sim", "--port", str(self.port), *extra],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, self.process)
        return self

    def stop(self) -> None:
        if self.process:
            stop_process(self.process)

    def call(self, method: str, path: str, payload: dict | None = None):
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def requests(self) -> list[dict]:
        return self.call("GET", "/_sim/requests")

    def clear(self) -> None:
        self.call("DELETE", "/_sim/requests")
        self.call("DELETE", "/_sim/faults")

    def fault(self, api_key: str, kind: str, **options) -> None:
        self.call("POST", "/_sim/faults", {"api_key": api_key, "kind": kind, **options})

    def stats(self) -> dict:
        return self.call("GET", "/_sim/stats")


SCALED = os.environ.get("CCGATE_TEST_DEPLOYMENT") == "scaled"
SCALED_WORKERS = 3


@dataclass
class Gateway:
    """`ccgate serve` with its own data directory: one process on SQLite, or, when the suite runs with
    CCGATE_TEST_DEPLOYMENT=scaled, three worker processes on PostgreSQL and Redis of their own."""

    data_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    log_path: Path | None = None
    workers: int = SCALED_WORKERS if SCALED else 1

    def __post_init__(self) -> None:
        if SCALED and "CCGATE_DATABASE_URL" not in self.extra_env:
            from services import Deployment

            self.extra_env = {**Deployment.shared().gateway_env(), **self.extra_env}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "CCGATE_DATA_DIR": str(self.data_dir), "CCGATE_RELOAD_INTERVAL": "0.2",
                **self.extra_env}

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a `ccgate` admin command against this gateway's data."""
        result = subprocess.run([*CCGATE, *args], env=self.env, capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"ccgate {' '.join(args)} failed: {result.stderr}")
        return result

    def start(self) -> Gateway:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / f"gateway-{self.port}.log"
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [*CCGATE, "serve", "--port", str(self.port), "--workers", str(self.workers)], env=self.env,
            stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, self.process, timeout=60)  # migrating, then binding: seconds on a busy machine
        with urllib.request.urlopen(self.url + "/healthz", timeout=30):  # a worker is serving
            pass
        if self.workers > 1:
            self.wait_until_every_worker_listens()
        return self

    def wait_until_every_worker_listens(self, timeout: float = 60.0) -> None:
        """Until each worker has subscribed to the configuration announcements, which it does once it
        serves: from then on every admin change is confirmed by all of them before it returns (a change
        made while one is still starting reaches it only through its reload)."""
        from redis import Redis

        from ccgate.broadcast import CONFIGURATION

        settings, _ = settings_of(self.env)
        assert settings.redis_url, "serve --workers above 1 needs Redis"
        channel = settings.redis_prefix + CONFIGURATION
        deadline = time.monotonic() + timeout
        with Redis.from_url(settings.redis_url) as redis:
            while (listening := redis.pubsub_numsub(channel)[0][1]) < self.workers:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{listening} of {self.workers} workers listen for changes after {timeout}s")
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process:
            stop_process(self.process)

    def admin(self, action: Callable[[Operations], Awaitable[T]]) -> T:
        """Run one admin operation in this process, as `ccgate` runs it (admin.run_operation): the same
        `Operations` on this gateway's data, announcing the change the same way, without a CLI start-up."""
        return run_operation(self.env, action)

    def new_user(self, email: str, *extra: str) -> str:
        """`ccgate users add email *extra`, in this process."""
        args = cli_arguments("users", "add", email, *extra)
        self.admin(lambda ops: ops.add_user(args.email, password=args.password, admin=args.admin,
                                            credit_usd=args.credit_usd))
        return email

    def new_key(self, email: str, *extra: str) -> str:
        """A fresh key for `email` (created with the user if needed), made as `ccgate keys create email *extra`
        makes it; a running server serves it at once (the change marker, and Redis's confirmed announcement)."""
        args = cli_arguments("keys", "create", email, *extra)

        async def create(ops: Operations) -> str:
            try:
                await ops.user(email)
            except OperationError:
                await ops.add_user(email)
            return (await ops.create_key(email, name=args.name, limits=limits_of(args))).plaintext

        key = self.admin(create)
        if self.process is not None:
            self.wait_until_key_works(key)
        return key

    def key_ids(self, email: str) -> list[str]:
        """The ids of `email`'s keys, as the first column of `ccgate keys list email`."""
        return [key["id"] for key in self.admin(lambda ops: ops.list_keys(email))]

    def update_key(self, key_id: str, *extra: str) -> None:
        """`ccgate keys update key_id *extra`, in this process."""
        args = cli_arguments("keys", "update", key_id, *extra)
        self.admin(lambda ops: ops.update_key(args.key_id, limits_of(args), name=args.name))

    def accounts_listing(self) -> list[str]:
        """The lines `ccgate accounts list` prints, made in this process by the same function."""
        now_ms = int(time.time() * 1000)
        accounts = self.admin(lambda ops: ops.list_accounts())
        return [account_line(account, now_ms) for account in accounts]

    def wait_until_key_works(self, key: str, timeout: float = 5.0) -> None:
        """A running server picks new keys up within its reload interval; wait for that."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            request = urllib.request.Request(self.url + "/v1/models?limit=1", headers={"x-api-key": key})
            try:
                with urllib.request.urlopen(request, timeout=5):
                    return
            except urllib.error.HTTPError as error:
                if error.code != 401:
                    return
            time.sleep(0.05)
        raise TimeoutError("the gateway did not pick up a new key")

    def add_account(self, name: str, api_key: str, base_url: str, *extra: str) -> None:
        """`ccgate accounts add name --api-key api_key --base-url base_url *extra`, in this process."""
        args = cli_arguments("accounts", "add", name, "--api-key", api_key, "--base-url", base_url, *extra)
        self.admin(lambda ops: ops.add_account(
            args.name, account_secret(args), base_url=args.base_url, models=args.models, priority=args.priority,
            weight=args.weight, rpm=args.rpm, concurrency=args.concurrency))

    def query(self, sql: str, *params) -> list[tuple]:
        """Rows of a read-only SQL query on this gateway's database, SQLite or PostgreSQL."""
        url = self.extra_env.get("CCGATE_DATABASE_URL")
        if not url:
            import sqlite3

            with sqlite3.connect(self.data_dir / "ccgate.sqlite3") as db:
                return db.execute(sql.replace("%s", "?"), params).fetchall()
        from services import Deployment

        literal = sql % tuple("'" + str(p).replace("'", "''") + "'" for p in params)
        return [tuple(int(v) if v.lstrip("-").isdigit() else v for v in row)
                for row in Deployment.shared().postgres.psql(url.rsplit("/", 1)[1], literal)]

    def wait_reload(self) -> None:
        """Long enough for a running server to see an admin change (the reload interval is 0.2 s)."""
        time.sleep(0.6)
