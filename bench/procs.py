"""The benchmark's processes, each on its core: the simulator upstream, the floor proxy and ccgate.

Each is started with an explicit command and environment (no CCGATE_* setting leaks in from the
caller's), then pinned: the measured proxy gets a core of its own, and this script, wrk, curl and
the simulator share the other.  Every thread of a process is pinned, and threads started later
inherit it.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from harness import free_port, stop_process, wait_for_port  # noqa: E402  (generic process helpers)

CCGATE = [sys.executable, "-m", "ccgate.cli"]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SIM_KEY = "sk-ant-sim-bench"
BENCH_EMAIL = "bench@ccgate.local"
# Every rule on, none of them in the way: admission still counts, leases, budgets and holds.
KEY_LIMITS = ("--rpm", "10000000", "--concurrency", "100000", "--token-budget", "100000000000")
CREDIT_USD = "1000000"


@dataclass(frozen=True)
class Cores:
    """Which CPUs the measured proxy runs on, and which the load generator and upstream share."""

    proxy: frozenset[int]
    load: frozenset[int]

    @classmethod
    def of_this_machine(cls) -> Cores:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            return cls(frozenset(cpus), frozenset(cpus))
        return cls(frozenset(cpus[:1]), frozenset(cpus[1:2]))

    @property
    def pinned(self) -> bool:
        return not self.proxy & self.load

    def describe(self) -> str:
        if not self.pinned:
            return "one CPU only: nothing pinned, proxy and load share it"
        return f"proxy on CPU {min(self.proxy)}; wrk, curl and the simulator on CPU {min(self.load)}"


def pin(pid: int, cpus: Iterable[int]) -> None:
    """Pin every thread of a process (those it starts later inherit the pinning)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), set(cpus))
        except ProcessLookupError:
            pass  # a thread that ended meanwhile


def raise_open_files_limit() -> int:
    """Lift this process's open-files limit to its hard limit (children inherit it); the new limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def rss_mb(pid: int) -> float:
    """Resident set size in MB (10^6 bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads together."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def family(pid: int) -> list[int]:
    """A process and its descendants (a server's worker processes)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:  # it has ended
        return []
    return [pid, *(member for child in children for member in family(int(child)))]


def serve_has_workers() -> bool:
    """Whether `ccgate serve` takes --workers yet."""
    return "--workers" in admin(os.environ.copy(), "serve", "--help")


@dataclass
class Service:
    """A server the benchmark starts, waits for, pins to `cpus` and stops."""

    command: list[str]
    cpus: frozenset[int]
    env: dict[str, str] | None = None
    log: Path | None = None
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def start(self) -> Service:
        output = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.process = subprocess.Popen([*self.command, "--port", str(self.port)], env=self.env, stdout=output,
                                        stderr=subprocess.STDOUT)
        wait_for_port(self.port, self.process)
        pin(self.pid, self.cpus)
        return self

    def stop(self) -> None:
        if self.process:
            stop_process(self.process)


def gateway_environment(data_dir: Path) -> dict[str, str]:
    """ccgate's settings as measured: its own data directory (SQLite), no response cache, and every
    other setting at its default."""
    inherited = {name: value for name, value in os.environ.items() if not name.startswith("CCGATE_")}
    return inherited | {"CCGATE_DATA_DIR": str(data_dir), "CCGATE_CACHE": "off"}


def admin(env: dict[str, str], *args: str) -> str:
    """Run a `ccgate` admin command; its standard output."""
    result = subprocess.run([*CCGATE, *args], env=env, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"ccgate {' '.join(args)} failed: {result.stderr}")
    return result.stdout


def get_json(url: str, headers: dict[str, str] | None = None) -> dict:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as response:
        return json.loads(response.read())


def wait_until_key_works(url: str, key: str, seconds: float = 10.0) -> None:
    """A server loads keys on start; make sure it answers this one."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            get_json(url + "/v1/models?limit=1", {"x-api-key": key})
            return
        except urllib.error.HTTPError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)


@dataclass
class Stack:
    """A simulator, and the floor and ccgate in front of it, each proxy pinned to the proxy core.

    ccgate runs as measured: its own data directory, the simulator its one account, a user with
    prepaid credit (so every request holds and settles credit), a key with every limit set, and
    the response cache off so every request goes upstream.
    """

    data_dir: Path
    cores: Cores
    sim_args: tuple[str, ...] = ()
    sim: Service | None = None
    floor: Service | None = None
    gateway: Service | None = None
    key: str = ""
    environment: dict[str, str] = field(default_factory=dict)  # more settings for ccgate (CCGATE_*, OTEL_*)

    def start(self) -> Stack:
        self.sim = Service([*CCGATE, "sim", *self.sim_args], self.cores.load).start()
        self.floor = Service([sys.executable, str(ROOT / "bench" / "floor.py"), "--upstream", self.sim.url],
                             self.cores.proxy).start()
        env = gateway_environment(self.data_dir) | self.environment
        admin(env, "accounts", "add", "sim", "--api-key", SIM_KEY, "--base-url", self.sim.url)
        admin(env, "users", "add", BENCH_EMAIL, "--credit-usd", CREDIT_USD)
        self.key = admin(env, "keys", "create", BENCH_EMAIL, *KEY_LIMITS).strip().splitlines()[-1]
        self.gateway = Service([*CCGATE, "serve"], self.cores.proxy, env, self.data_dir / "gateway.log").start()
        wait_until_key_works(self.gateway.url, self.key)
        return self

    def stop(self) -> None:
        for service in (self.gateway, self.floor, self.sim):
            if service is not None:
                service.stop()

    def open_streams(self) -> int:
        """Streams the simulator is sending right now."""
        return get_json(self.sim.url + "/_sim/stats")["open_streams"]

    @property
    def database(self) -> Path:
        return self.data_dir / "ccgate.sqlite3"

    def start_workers(self, workers: int, redis_url: str) -> Service:
        """Another `ccgate serve` on the same data with `workers` processes sharing limits through
        Redis, on every core."""
        env = self.gateway.env | {"CCGATE_REDIS_URL": redis_url}
        return Service([*CCGATE, "serve", "--workers", str(workers)], self.cores.proxy | self.cores.load, env,
                       self.data_dir / "workers.log").start()


def redis_server(cpus: frozenset[int], directory: Path) -> Service | None:
    """A throwaway Redis (no persistence), or None where redis-server is not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    return Service([binary, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(directory)],
                   cpus)


class CpuClock:
    """The CPU time a process and its descendants used, and the wall time that passed, inside a `with`
    block (no process: no CPU time)."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.used = self.elapsed = 0.0

    def _cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in family(self.pid)) if self.pid is not None else 0.0

    def __enter__(self) -> CpuClock:
        self._start, self._wall = self._cpu(), time.monotonic()
        return self

    def __exit__(self, *exc_info) -> None:
        self.used = self._cpu() - self._start
        self.elapsed = time.monotonic() - self._wall

    @property
    def share(self) -> float:
        """The share of one core it kept busy."""
        return self.used / self.elapsed if self.elapsed else 0.0


def machine_cpu_seconds() -> float:
    """CPU time every process of this machine has used since boot (/proc/stat)."""
    user, nice, system, _idle, _iowait, irq, softirq = map(int, Path("/proc/stat").read_text().split()[1:8])
    return (user + nice + system + irq + softirq) / CLOCK_TICKS


class Neighbours:
    """The CPU time that processes other than the benchmark's used during a `with` block: the
    benchmark is this process, its children so far waited for, and the live processes `pids`."""

    def __init__(self, pids: Iterable[int]) -> None:
        self.pids = list(pids)
        self.used = self.elapsed = 0.0

    def _ours(self) -> float:
        times = os.times()
        return times.user + times.system + times.children_user + times.children_system + sum(
            cpu_seconds(pid) for pid in self.pids)

    def __enter__(self) -> Neighbours:
        self._machine, self._start, self._wall = machine_cpu_seconds(), self._ours(), time.monotonic()
        return self

    def __exit__(self, *exc_info) -> None:
        self.used = max(0.0, machine_cpu_seconds() - self._machine - (self._ours() - self._start))
        self.elapsed = time.monotonic() - self._wall

    @property
    def share(self) -> float:
        """The share of the whole machine's CPU they took."""
        return self.used / (self.elapsed * (os.cpu_count() or 1)) if self.elapsed else 0.0


def wait_for_quiet(pids: Iterable[int], *, share: float, seconds: float) -> float:
    """Wait, at most `seconds`, for a second in which other processes take less than `share` of the
    machine's CPU; the share last seen."""
    deadline = time.monotonic() + seconds
    while True:
        with Neighbours(pids) as neighbours:
            time.sleep(1)
        if neighbours.share < share or time.monotonic() >= deadline:
            return neighbours.share
