"""CPU per request of ccgate with its observability off and on (issue 15), in a few bounded seconds.

    PYTHONPATH=src python bench/obs_cost.py [--seconds 4] [--rounds 2] [--before COMMIT]

For each setting a gateway of its own (SQLite, response cache off, one account on the simulator)
takes wrk at 8 connections for `--seconds`, after a one-second warm-up; the gateway's CPU time over
the requests it answered is the figure. Settings: the code before observability (`--before`, checked
out with `git archive` into a temporary directory), and this code with metrics only (the access log
and traces off), with the access log to a file, and with traces too (OTLP/HTTP to a receiver in this
script, every request sampled, then one in twenty). Rounds are interleaved so the machine's load falls on each alike.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bodies import body  # noqa: E402
from load import Target, wrk  # noqa: E402
from procs import (  # noqa: E402
    BENCH_EMAIL,
    CCGATE,
    CREDIT_USD,
    KEY_LIMITS,
    ROOT,
    SIM_KEY,
    Cores,
    CpuClock,
    Service,
    admin,
    gateway_environment,
    wait_until_key_works,
)

from helpers import Receiver  # noqa: E402  (tests/, put on the path by procs)

CONNECTIONS = 8


def checkout(commit: str, into: Path) -> Path:
    """The `src` tree of `commit`, for a gateway to run the code as it was."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "src"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into / "src"


def gateway(name: str, src: Path, extra: dict[str, str], sim_url: str, work: Path, cores: Cores) -> tuple[Service, str]:
    data = work / name
    data.mkdir()
    env = gateway_environment(data) | {"PYTHONPATH": str(src)} | {
        key.format(data=data): value.format(data=data) for key, value in extra.items()}
    admin(env, "accounts", "add", "sim", "--api-key", SIM_KEY, "--base-url", sim_url)
    admin(env, "users", "add", BENCH_EMAIL, "--credit-usd", CREDIT_USD)
    key = admin(env, "keys", "create", BENCH_EMAIL, *KEY_LIMITS).strip().splitlines()[-1]
    service = Service([*CCGATE, "serve"], cores.proxy, env, data / "gateway.log").start()
    wait_until_key_works(service.url, key)
    return service, key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--before", default="394bdc3^1", help="a commit without observability")
    args = parser.parse_args()
    cores = Cores.of_this_machine()
    receiver = Receiver()
    work = Path(tempfile.mkdtemp(prefix="ccgate-obs-cost-"))
    payload = work / "small.json"
    payload.write_bytes(body("Say hello.", max_tokens=16, stream=False))
    traces = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
              "OTEL_TRACES_SAMPLER": "always_on"}
    settings = {
        "before observability": (checkout(args.before, work), {}),
        "metrics (log and traces off)": (ROOT / "src", {}),
        "metrics + access log file": (ROOT / "src", {"CCGATE_ACCESS_LOG": "{data}/access.log"}),
        "metrics + access log + traces": (ROOT / "src", {"CCGATE_ACCESS_LOG": "{data}/access.log", **traces}),
        "metrics + access log + traces 5%": (ROOT / "src", {
            "CCGATE_ACCESS_LOG": "{data}/access.log", **traces, "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.05"}),
    }
    sim = Service([*CCGATE, "sim"], cores.load, {**os.environ, "PYTHONPATH": str(ROOT / "src")}).start()
    running = {}
    try:
        for index, (name, (src, extra)) in enumerate(settings.items()):
            running[name] = gateway(f"g{index}", src, extra, sim.url, work, cores)
        figures: dict[str, list[tuple[float, int]]] = {name: [] for name in settings}
        for _ in range(args.rounds):
            for name, (service, key) in running.items():
                target = Target(name, service.url + "/v1/messages", payload, key)
                wrk(target, connections=CONNECTIONS, seconds=1)  # warm-up
                with CpuClock(service.pid) as clock:
                    result = wrk(target, connections=CONNECTIONS, seconds=args.seconds)
                assert result.errors == 0, f"{name}: {result.errors} errors"
                figures[name].append((clock.used * 1e6 / result.requests, result.requests))
        base = min(us for us, _ in figures["before observability"])
        print("| setting | CPU per request (us), each round (requests) | best | vs before |\n|---|---|---|---|")
        for name, rounds in figures.items():
            best = min(us for us, _ in rounds)
            each = ", ".join(f"{us:.0f} ({count})" for us, count in rounds)
            print(f"| {name} | {each} | {best:.0f} | {100 * (best / base - 1):+.1f}% |")
        print(f"spans received: {len(receiver.bodies('/v1/traces'))} export batches")
    finally:
        for service, _ in running.values():
            service.stop()
        sim.stop()
        receiver.stop()


if __name__ == "__main__":
    main()
