"""Load, made by established clients: wrk for rates, latencies and event counts; curl for time to
first byte.  Both run wherever this script runs (the load core)."""

from __future__ import annotations

import json
import math
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

WRK_SCRIPT = Path(__file__).resolve().parent / "wrk.lua"
MARKER = "BENCH_JSON "


@dataclass(frozen=True)
class Target:
    """Where a load goes: a base URL, the path and body to POST there, and the key to send."""

    name: str
    url: str
    body: Path
    key: str


@dataclass(frozen=True)
class WrkResult:
    """What wrk's `done` hook reported (see bench/wrk.lua)."""

    requests: int
    duration_us: int
    non_2xx: int
    socket_errors: int
    p50_us: int
    p99_us: int
    events: int
    complete: int

    @property
    def rate(self) -> float:
        return self.requests / (self.duration_us / 1e6)

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


def wrk_command(target: Target, *, connections: int, seconds: int, timeout_s: int = 10) -> list[str]:
    return ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", f"--timeout={timeout_s}s", "-s", str(WRK_SCRIPT),
            target.url]


def wrk_environment(target: Target, *, count_events: bool = False) -> dict[str, str]:
    env = {**os.environ, "BENCH_BODY": str(target.body), "BENCH_KEY": target.key}
    if count_events:
        env["BENCH_EVENTS"] = "1"
    return env


def parse_wrk(output: str) -> WrkResult:
    for line in output.splitlines():
        if line.startswith(MARKER):
            return WrkResult(**json.loads(line[len(MARKER):]))
    raise RuntimeError(f"wrk printed no summary:\n{output}")


def wrk(target: Target, *, connections: int, seconds: int, count_events: bool = False) -> WrkResult:
    """One bounded wrk run with one thread."""
    result = subprocess.run(wrk_command(target, connections=connections, seconds=seconds),
                            env=wrk_environment(target, count_events=count_events),
                            capture_output=True, text=True, timeout=seconds + 60)
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed on {target.name}: {result.stderr}")
    return parse_wrk(result.stdout)


def time_to_first_byte(target: Target, samples: int) -> list[float]:
    """Seconds to the first response byte of `samples` streaming requests, one after another on one
    kept-alive connection (one curl, so connecting is not measured); raises unless every one is a 200."""
    per_request = []
    for _ in range(samples + 1):  # the first one opens the connection: not counted
        per_request += ["-o", "/dev/null", target.url]
    result = subprocess.run(
        ["curl", "-s", "--no-buffer", "-w", "%{http_code} %{time_starttransfer}\n",
         "-H", "content-type: application/json", "-H", "anthropic-version: 2023-06-01",
         "-H", f"x-api-key: {target.key}", "--data-binary", f"@{target.body}", *per_request],
        capture_output=True, text=True, timeout=60 + samples)
    lines = [line.split() for line in result.stdout.splitlines()]
    if len(lines) != samples + 1 or any(code != "200" for code, _ in lines):
        raise RuntimeError(f"time to first byte on {target.name}: not all 200: {result.stdout[-500:]}")
    return [float(seconds) for _, seconds in lines[1:]]


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]
