"""Real Redis and PostgreSQL servers on loopback, started by the tests in temporary directories.

Where a server's binaries are missing the tests that need it are skipped with a message saying so,
except in CI (the CI variable is set), where .ci/run has installed them and a missing one is a failure.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness import free_port, stop_process, wait_for_port


def require(binary: str | None, what: str) -> str:
    """The binary's path; a skip (a failure in CI) when it is not installed."""
    if binary and Path(binary).exists():
        return binary
    message = f"{what} is not installed here (apt-get install {what}); .ci/run installs it"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class RedisServer:
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    directory: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="ccgate-redis-"))

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = require(shutil.which("redis-server") or "/usr/bin/redis-server", "redis-server")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.directory], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, self.process)
        return self

    def stop(self) -> None:
        if self.process:
            stop_process(self.process)


def _postgres_bin() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return str(Path(found[-1]).parent) if found else None


@dataclass
class PostgresServer:
    """A throwaway cluster run as the `postgres` system user (PostgreSQL refuses to run as root)."""

    port: int = field(default_factory=free_port)
    directory: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="ccgate-pg-"))
    bin: str = ""

    def _as_postgres(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=60)

    def start(self) -> PostgresServer:
        self.bin = require(_postgres_bin(), "postgresql")
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.directory, user.pw_uid, user.pw_gid)
        self._as_postgres(f"{self.bin}/initdb", "-D", f"{self.directory}/data", "-U", "postgres", "--auth=trust",
                          "-E", "UTF8")
        return self.resume()

    def resume(self) -> PostgresServer:
        """Start the cluster (again, after stop)."""
        self._as_postgres(f"{self.bin}/pg_ctl", "-D", f"{self.directory}/data", "-l", f"{self.directory}/log", "-w",
                          "start", "-o", f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} "
                          "-c max_connections=300 -c fsync=off")
        return self

    def stop(self) -> None:
        if self.bin:
            self._as_postgres(f"{self.bin}/pg_ctl", "-D", f"{self.directory}/data", "-m", "fast", "-w", "stop")

    def new_database(self) -> str:
        """A fresh empty database; its URL."""
        name = "ccgate_" + uuid.uuid4().hex[:12]
        self.psql("postgres", f"CREATE DATABASE {name}")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def psql(self, database: str, sql: str) -> list[list[str]]:
        result = subprocess.run(
            [f"{self.bin}/psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database,
             "-At", "-F", "\t", "-c", sql], check=True, capture_output=True, text=True, timeout=30)
        return [line.split("\t") for line in result.stdout.splitlines() if line]


class Deployment:
    """PostgreSQL and Redis for scaled gateways, started once when first asked for."""

    _instance: Deployment | None = None

    def __init__(self) -> None:
        self.redis = RedisServer().start()
        self.postgres = PostgresServer().start()

    @classmethod
    def shared(cls) -> Deployment:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    @classmethod
    def stop_shared(cls) -> None:
        if cls._instance is not None:
            cls._instance.redis.stop()
            cls._instance.postgres.stop()
            cls._instance = None

    def gateway_env(self) -> dict[str, str]:
        """A new database and Redis namespace: one gateway's world, shared by its processes."""
        return {"CCGATE_DATABASE_URL": self.postgres.new_database(), "CCGATE_REDIS_URL": self.redis.url,
                "CCGATE_REDIS_PREFIX": f"t{uuid.uuid4().hex[:8]}:"}


def wait_until(condition, timeout: float = 5.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()
