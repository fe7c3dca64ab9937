"""`make bench`: ccgate beside the barest Python proxy, on one fixed-reply upstream (issue 9).

    python -m bench.run             # the full run, a few minutes; writes bench/results/latest.md
    python -m bench.run --smoke     # about a second per measure: proves the harness works, means nothing

One simulator with zero latency is the upstream.  In front of it, one after the other, the floor
(bench/floor.py) and ccgate with all its rules on, each alone on one core while wrk, curl and the
simulator share the other.  "direct" is the same load straight at the simulator.  Streams held
open for the memory measure come from a second, paced simulator with its own floor and ccgate.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.bodies import Bodies
from bench.load import Target, WrkResult, percentile, time_to_first_byte, wrk, wrk_command, wrk_environment
from bench.procs import (
    ROOT,
    SIM_KEY,
    Cores,
    CpuClock,
    Neighbours,
    Service,
    Stack,
    pin,
    raise_open_files_limit,
    redis_server,
    rss_mb,
    serve_has_workers,
    wait_for_quiet,
    wait_until_key_works,
)
from bench.report import Goal, Row, at_most, git, report, revision, throughput_goal

RESULTS = ROOT / "bench" / "results" / "latest.md"
THROUGHPUT_CONNECTIONS = 32
RELAY_CONNECTIONS = 8
WORKERS = 2
WORKERS_CONNECTIONS = 64
BUSY_MACHINE = 0.03  # more than this share of the CPU taken by others spoils a run
MESSAGES, CHAT = "/v1/messages", "/v1/chat/completions"


@dataclass(frozen=True)
class Plan:
    """How long and how hard each measure runs."""

    smoke: bool
    warmup_s: int
    run_s: int  # each throughput, latency and relay-cost run
    ttfb_samples: int
    open_streams: int
    stream_tokens: int  # each held-open stream says this many tokens ...
    tokens_per_sec: int  # ... at this pace (the paced simulator's)
    hold_s: int  # how long wrk holds the streams open
    quiet_s: int  # how long to wait, before each path's runs, for other processes to leave the CPU alone
    attempts: int  # how often to run a path's measures while other processes took too much CPU


FULL = Plan(smoke=False, warmup_s=2, run_s=10, ttfb_samples=200, open_streams=1000, stream_tokens=100,
            tokens_per_sec=5, hold_s=15, quiet_s=300, attempts=3)
SMOKE = Plan(smoke=True, warmup_s=1, run_s=1, ttfb_samples=10, open_streams=20, stream_tokens=30,
             tokens_per_sec=10, hold_s=3, quiet_s=0, attempts=1)


@dataclass
class Numbers:
    """One path's numbers on one workload: straight to the simulator, through the floor, or ccgate."""

    rate: float = 0.0  # requests/s at c=32
    busy: float | None = None  # share of its core the proxy kept busy meanwhile
    per_request: float | None = None  # µs of the proxy's CPU per request meanwhile
    p50: float = 0.0  # ms at c=1
    p99: float = 0.0
    ttfb50: float = 0.0  # ms to the first byte of a stream
    ttfb99: float = 0.0
    upstream_busy: float = 0.0  # share of its core the simulator kept busy during the c=32 run
    per_event: float | None = None  # µs of the proxy's CPU per upstream event relayed
    events_out: float = 0.0  # server-sent events the client got per response
    neighbours: float = 0.0  # share of the machine's CPU other processes took meanwhile
    answered: int = 0  # 200s
    errors: int = 0  # non-2xx answers and socket errors

    def count(self, *results: WrkResult) -> None:
        for result in results:
            self.answered += result.requests - result.errors
            self.errors += result.errors


@dataclass(frozen=True)
class Paths:
    """One request's three paths: direct, through the floor, through ccgate."""

    direct: Target
    floor: Target
    ccgate: Target


class Bench:
    """Runs every measure and gathers the table's rows and the notes that explain them."""

    def __init__(self, plan: Plan, cores: Cores, work: Path) -> None:
        self.plan, self.cores, self.work = plan, cores, work
        self.bodies = Bodies(work, plan.stream_tokens)
        self.notes: list[str] = []
        self.facts: dict = {}
        self.live_pids: list[int] = []  # the benchmark's long-running processes
        self.workers_answered = 0  # requests answered 200 by `ccgate serve --workers`

    def run(self) -> list[Row]:
        main = Stack(self.work / "main", self.cores)
        try:
            main.start()
            idle = {"floor": rss_mb(main.floor.pid), "ccgate": rss_mb(main.gateway.pid)}
            direct, floor, messages, chat = self._speed(main)
            workers = self._workers(main, messages)
        finally:
            main.stop()
        self._check_usage_rows(main.database, messages.answered + chat.answered + self.workers_answered)
        paced = Stack(self.work / "paced", self.cores, ("--tokens-per-sec", str(self.plan.tokens_per_sec)))
        try:
            paced.start()
            memory = self._memory(paced, idle)
        finally:
            paced.stop()
        self._speed_notes(direct, floor, messages, chat)
        return [*speed_rows(MESSAGES, direct, floor, messages, 20),
                *speed_rows(CHAT + " (OpenAI)", direct, floor, chat, 50), *memory, *workers]

    # -- speed: throughput, latency, time to first byte, relay cost --------------------------------

    def _speed(self, stack: Stack) -> tuple[Numbers, Numbers, Numbers, Numbers]:
        def paths(body: Path) -> Paths:
            return Paths(Target("direct", stack.sim.url + MESSAGES, body, SIM_KEY),
                         Target("floor", stack.floor.url + MESSAGES, body, SIM_KEY),
                         Target("ccgate", stack.gateway.url + MESSAGES, body, stack.key))

        small, stream, events = paths(self.bodies.small), paths(self.bodies.stream), paths(self.bodies.events)
        sim = stack.sim.pid
        self.live_pids = [sim, stack.floor.pid, stack.gateway.pid]
        direct = self._measure(small.direct, stream.direct, events.direct, None, sim, None)
        per_response = direct.events_out
        floor = self._measure(small.floor, stream.floor, events.floor, stack.floor.pid, sim, per_response)
        gateway = stack.gateway.pid
        messages = self._measure(small.ccgate, stream.ccgate, events.ccgate, gateway, sim, per_response)
        chat = self._measure(*(dataclasses.replace(target, url=stack.gateway.url + CHAT)
                               for target in (small.ccgate, stream.ccgate, events.ccgate)), gateway, sim, per_response)
        return direct, floor, messages, chat

    def _measure(self, small: Target, stream: Target, events: Target, pid: int | None, upstream_pid: int,
                 events_per_response: float | None) -> Numbers:
        """Throughput at c=32, latency at c=1, time to first byte, and (for a proxy) relay cost; measured
        again (up to the plan's attempts) while other processes took too much of the machine."""
        answered = errors = 0
        for _ in range(self.plan.attempts):
            if self.plan.quiet_s:
                wait_for_quiet(self.live_pids, share=BUSY_MACHINE, seconds=self.plan.quiet_s)
            numbers = self._measure_once(small, stream, events, pid, upstream_pid, events_per_response)
            answered, errors = answered + numbers.answered, errors + numbers.errors
            if numbers.neighbours <= BUSY_MACHINE:
                break
        numbers.answered, numbers.errors = answered, errors
        return numbers

    def _measure_once(self, small: Target, stream: Target, events: Target, pid: int | None, upstream_pid: int,
                      events_per_response: float | None) -> Numbers:
        plan, numbers = self.plan, Numbers()
        with Neighbours(self.live_pids) as neighbours:
            warmup = wrk(small, connections=THROUGHPUT_CONNECTIONS, seconds=plan.warmup_s)
            with CpuClock(pid) as clock, CpuClock(upstream_pid) as upstream:
                throughput = wrk(small, connections=THROUGHPUT_CONNECTIONS, seconds=plan.run_s)
            latency = wrk(small, connections=1, seconds=plan.run_s)
            first_bytes = time_to_first_byte(stream, plan.ttfb_samples)
            with CpuClock(pid) as relay_clock:
                relay = wrk(events, connections=RELAY_CONNECTIONS, seconds=plan.run_s, count_events=True)
        numbers.neighbours = neighbours.share
        if relay.complete == 0:
            raise RuntimeError(f"{events.name}: no stream ran to its end")
        numbers.count(warmup, throughput, latency, relay)
        numbers.answered += len(first_bytes) + 1
        numbers.rate, numbers.upstream_busy = throughput.rate, upstream.share
        numbers.p50, numbers.p99 = latency.p50_us / 1000, latency.p99_us / 1000
        numbers.ttfb50, numbers.ttfb99 = (percentile(first_bytes, q) * 1000 for q in (50, 99))
        numbers.events_out = relay.events / relay.complete
        if pid is not None:
            numbers.busy, numbers.per_request = clock.share, clock.used / throughput.requests * 1e6
            numbers.per_event = relay_clock.used / (relay.complete * events_per_response) * 1e6
        return numbers

    def _speed_notes(self, direct: Numbers, floor: Numbers, messages: Numbers, chat: Numbers) -> None:
        self.facts |= {"ccgate_errors": messages.errors + chat.errors, "floor_errors": floor.errors,
                       "events_per_response": direct.events_out}
        disturbed = max(n.neighbours for n in (direct, floor, messages, chat)) > BUSY_MACHINE
        self.notes += [
            f"errors (non-2xx answers and socket errors), all runs: direct {direct.errors}, floor {floor.errors}, "
            f"ccgate {messages.errors} on {MESSAGES} and {chat.errors} on {CHAT}.",
            f"while wrk ran at c={THROUGHPUT_CONNECTIONS}, the proxy kept its core busy: floor {floor.busy:.0%}, "
            f"ccgate {messages.busy:.0%} ({MESSAGES}) and {chat.busy:.0%} ({CHAT}); the simulator, on the "
            f"other core with wrk, used {direct.upstream_busy:.0%} of it answering wrk directly, "
            f"{floor.upstream_busy:.0%} behind the floor and {messages.upstream_busy:.0%} behind ccgate.",
            f"relay cost: the proxy's CPU time (utime + stime of all its threads, from /proc) during "
            f"{self.plan.run_s} s of wrk at c={RELAY_CONNECTIONS} on streams of ~400 tokens, over the upstream "
            f"events of the complete responses ({direct.events_out:.0f} per response).  Events the client got "
            f"per response: floor {floor.events_out:.0f}, ccgate {messages.events_out:.0f} (Anthropic), "
            f"{chat.events_out:.0f} OpenAI chunks.",
            f"other processes on this machine took {direct.neighbours:.0%}, {floor.neighbours:.0%}, "
            f"{messages.neighbours:.0%} and {chat.neighbours:.0%} of its CPU during the direct, floor, ccgate "
            f"{MESSAGES} and {CHAT} runs (a path is measured again, {self.plan.attempts} times in all at most, "
            f"while they take more than {BUSY_MACHINE:.0%})"
            + ("; **the runs above that were disturbed: read their numbers with care**." if disturbed else "."),
        ]

    def _check_usage_rows(self, database: Path, answered: int) -> None:
        """Every request ccgate answered has its usage row (read after ccgate stopped)."""
        with sqlite3.connect(database) as db:
            rows, ok_rows = db.execute("SELECT count(*), coalesce(sum(status = 200), 0) FROM usage").fetchone()
        self.facts |= {"ccgate_answered": answered, "usage_rows": rows, "usage_rows_200": ok_rows}
        self.notes.append(f"usage rows ccgate committed: {rows:,}, {ok_rows:,} of them for a 200, for {answered:,} "
                          f"requests answered 200 (a request wrk cut off at the end of a run is settled too).")

    # -- memory ------------------------------------------------------------------------------------

    def _memory(self, stack: Stack, idle: dict[str, float]) -> list[Row]:
        streams = self.plan.open_streams
        floor_rss, floor_open = self._rss_with_open_streams(
            stack, Target("floor", stack.floor.url + MESSAGES, self.bodies.open, SIM_KEY), stack.floor.pid)
        ccgate_rss, ccgate_open = self._rss_with_open_streams(
            stack, Target("ccgate", stack.gateway.url + MESSAGES, self.bodies.open, stack.key),
            stack.gateway.pid)
        self.facts["open_streams"] = {"floor": floor_open, "ccgate": ccgate_open}
        seconds = self.plan.stream_tokens / self.plan.tokens_per_sec
        self.notes.append(
            f"memory: VmRSS from /proc. Idle: right after start and one key check. Open streams: wrk -c{streams} "
            f"on a second simulator that paces {self.plan.tokens_per_sec} tokens/s (streams of ~{seconds:.0f} s), "
            f"sampled once the simulator counted the streams open: {floor_open} (floor), {ccgate_open} (ccgate).")
        return [Row("RSS idle", "MB", floor=idle["floor"], ccgate=idle["ccgate"], goal=at_most(100, "MB")),
                Row(f"RSS with {streams:,} open streams", "MB", floor=floor_rss, ccgate=ccgate_rss,
                    goal=at_most(300, "MB"))]

    def _rss_with_open_streams(self, stack: Stack, target: Target, pid: int) -> tuple[float, int]:
        """The process's peak RSS while wrk holds the plan's streams open through it; and how many
        the simulator saw open."""
        plan = self.plan
        command = wrk_command(target, connections=plan.open_streams, seconds=plan.hold_s,
                              timeout_s=plan.hold_s + 60)
        with subprocess.Popen(command, env=wrk_environment(target), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) as load:
            opened = wait_for_streams(stack, lambda count: count >= plan.open_streams, plan.hold_s - 1)
            rss = peak_rss(pid, seconds=1.0)
            load.wait(timeout=plan.hold_s + 30)
        wait_for_streams(stack, lambda count: count == 0, 30)
        return rss, opened

    # -- more than one worker ----------------------------------------------------------------------

    def _workers(self, stack: Stack, one_worker: Numbers) -> list[Row]:
        """Throughput of `serve --workers` and the CPU it spends per request: on this machine the
        workers, wrk, the simulator and Redis share two cores, so the second row tells how it scales
        where each worker has a core of its own (throughput = cores / CPU per request)."""
        measure = f"{MESSAGES} throughput, c={WORKERS_CONNECTIONS}, --workers {WORKERS}"
        goal = Goal(f"≈ {WORKERS} × one worker ({one_worker.rate:,.0f})",
                    lambda value, floor: value >= 0.85 * WORKERS * one_worker.rate)
        cpu_measure = f"{MESSAGES} CPU per request, c={WORKERS_CONNECTIONS}, --workers {WORKERS} on Redis"
        cpu_goal = Goal(f"≤ 1.25 × one worker's ({one_worker.per_request:,.0f})",
                        lambda value, floor: value <= 1.25 * one_worker.per_request)
        if not serve_has_workers():
            return [Row(measure, "req/s", goal=goal, absent="not available yet")]
        redis = redis_server(self.cores.load, self.work)
        if redis is None:
            return [Row(measure, "req/s", goal=goal, absent="needs redis-server")]
        try:
            result, per_request = self._workers_throughput(stack, redis.start())
        except RuntimeError as error:
            return [Row(measure, "req/s", goal=goal, absent=f"did not run: {error}")]
        finally:
            redis.stop()
        self.notes.append(f"--workers {WORKERS}: with Redis (needed above one worker) on the load core; not pinned, "
                          f"so the workers share both cores with wrk, the simulator and Redis; {result.errors} errors. "
                          "Its CPU per request is that of all the worker processes together.")
        return [Row(measure, "req/s", ccgate=result.rate, goal=goal),
                Row(cpu_measure, "µs", ccgate=per_request, goal=cpu_goal)]

    def _workers_throughput(self, stack: Stack, redis: Service) -> tuple[WrkResult, float]:
        """The run's result, and the µs of CPU the workers spent per request meanwhile."""
        service = stack.start_workers(WORKERS, redis.url.replace("http://", "redis://"))
        try:
            target = Target("ccgate --workers", service.url + MESSAGES, self.bodies.small, stack.key)
            wait_until_key_works(service.url, stack.key)
            # One worker answering says nothing of the other, which may still be starting: wait until
            # nothing but the benchmark's servers uses the CPU.
            wait_for_quiet([*self.live_pids, redis.pid], share=BUSY_MACHINE, seconds=self.plan.quiet_s)
            warmup = wrk(target, connections=WORKERS_CONNECTIONS, seconds=self.plan.warmup_s)
            with CpuClock(service.pid) as clock:
                result = wrk(target, connections=WORKERS_CONNECTIONS, seconds=self.plan.run_s)
            self.workers_answered = sum(run.requests - run.errors for run in (warmup, result))
            return result, clock.used / max(result.requests, 1) * 1e6
        finally:
            service.stop()


def speed_rows(label: str, direct: Numbers, floor: Numbers, ccgate: Numbers, relay_limit_us: float) -> list[Row]:
    """Throughput, added latency, added time to first byte and relay cost of one dialect."""
    def added(name: str, unit: str, value: Callable[[Numbers], float], goal: Goal | None) -> Row:
        base = value(direct)
        return Row(f"{label} {name}", unit, base, value(floor) - base, value(ccgate) - base, goal)

    return [
        Row(f"{label} throughput, c={THROUGHPUT_CONNECTIONS}", "req/s", direct.rate, floor.rate, ccgate.rate,
            throughput_goal(2500, 0.7)),
        Row(f"{label} CPU per request, c={THROUGHPUT_CONNECTIONS}", "µs", None, floor.per_request, ccgate.per_request,
            None),
        added("added latency p50, c=1", "ms", lambda n: n.p50, at_most(0.6, "ms")),
        added("added latency p99, c=1", "ms", lambda n: n.p99, at_most(2, "ms")),
        added("stream, added time to first byte p50", "ms", lambda n: n.ttfb50, None),
        added("stream, added time to first byte p99", "ms", lambda n: n.ttfb99, at_most(2, "ms")),
        Row(f"{label} stream, CPU per relayed event", "µs", None, floor.per_event, ccgate.per_event,
            at_most(relay_limit_us, "µs")),
    ]


def wait_for_streams(stack: Stack, done: Callable[[int], bool], seconds: float) -> int:
    """Poll the simulator's count of open streams until `done(count)` or time is up; the last count."""
    deadline = time.monotonic() + seconds
    while True:
        count = stack.open_streams()
        if done(count) or time.monotonic() >= deadline:
            return count
        time.sleep(0.1)


def peak_rss(pid: int, *, seconds: float, samples: int = 5) -> float:
    peak = 0.0
    for _ in range(samples):
        peak = max(peak, rss_mb(pid))
        time.sleep(seconds / samples)
    return peak


def static_notes(plan: Plan) -> list[str]:
    return [
        "direct: the same load straight at the simulator.  Latency rows: the direct column is the time itself; "
        "floor and ccgate show the time they add (their percentile minus direct's).",
        f"{CHAT} rows: ccgate translates each request and stream; their direct and floor columns are the "
        f"{MESSAGES} runs (the same request bytes, which the floor cannot translate).",
        f"runs: wrk -t1, {plan.warmup_s} s warm-up then {plan.run_s} s per measure; time to first byte: "
        f"{plan.ttfb_samples} streaming requests after one another on one kept-alive curl connection.",
        "ccgate as measured: one uvicorn worker; key auth, RPM, concurrency lease, token budget, prepaid credit "
        "hold and settlement, routing over one upstream account, usage row committed before the last byte; "
        "the response cache off (CCGATE_CACHE=off) so every request goes upstream.",
    ]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description="ccgate's benchmark (issue 9).")
    parser.add_argument("--smoke", action="store_true", help="a few seconds per measure, to test the harness")
    parser.add_argument("--out", type=Path, help=f"where to write the table (default: {RESULTS}; none for --smoke)")
    parser.add_argument("--json", type=Path, help="also write the rows and facts as JSON here")
    parser.add_argument("--rev", help="measure this git commit of ccgate (exported from git) instead of the "
                                      "working tree")
    return parser.parse_args()


def export_commit(commit: str, work: Path) -> Path:
    """The commit's src/, exported from git into `work`."""
    archive = subprocess.run(["git", "archive", commit, "src"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(work)], input=archive, check=True)
    return work / "src"


def use_commit(commit: str, work: Path) -> None:
    """Export the commit's src/ into `work` and put it first on the path of every process started from here."""
    src = export_commit(commit, work)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH")]))


def exit_on_termination() -> None:
    """SIGTERM and SIGINT (ignored by default in background jobs) unwind through the `finally` blocks
    that stop the benchmark's processes."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda number, frame: sys.exit(128 + number))


def main() -> None:
    exit_on_termination()
    args = parse_args()
    plan = SMOKE if args.smoke else FULL
    cores = Cores.of_this_machine()
    pin(os.getpid(), cores.load)  # wrk, curl and the simulator start from here and inherit it
    raise_open_files_limit()
    commit = git("rev-parse", "--verify", f"{args.rev}^{{commit}}") if args.rev is not None else None
    measured = revision(commit)
    with tempfile.TemporaryDirectory(prefix="ccgate-bench-") as work:
        if commit is not None:
            use_commit(commit, Path(work))
        bench = Bench(plan, cores, Path(work))
        rows = bench.run()
    text = report(rows, static_notes(plan) + bench.notes, measured=measured, cores=cores, smoke=plan.smoke)
    print(text)
    out = args.out or (None if plan.smoke else RESULTS)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    if args.json is not None:
        args.json.write_text(json.dumps({"rows": [row.as_json() for row in rows], **bench.facts}, indent=2))


if __name__ == "__main__":
    main()
