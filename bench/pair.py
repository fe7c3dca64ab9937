"""`make bench-pair REV=...`: the CPU per request of a commit and of the working tree, measured at once.

    python -m bench.pair --rev 9b31d30 [--rounds 5] [--seconds 5] [--path /v1/chat/completions]
                         [--access-log] [--traces RATIO]

On a shared or noisy machine, `make bench`'s CPU per request moves by 15% from one run to the next,
more than most changes it is meant to judge.  Here two stacks (simulator and ccgate, as `make bench`
runs them), one from the commit and one from the working tree, have their proxies pinned to the same
core and are loaded by a wrk each, at the same time: whatever else the machine does falls on both
alike, and the ratio of their CPU per request holds to a percent or two from round to round.

With `--access-log` the working tree also writes its access log (to a file), and with `--traces RATIO`
it also exports traces of that share of its requests (OTLP/HTTP to a receiver in this process); the
commit runs as it is.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

from bench.bodies import Bodies
from bench.load import Target, parse_wrk, wrk, wrk_command, wrk_environment
from bench.procs import ROOT, Cores, CpuClock, Stack, pin
from bench.report import git
from bench.run import exit_on_termination, export_commit
from helpers import Receiver  # tests/, put on the path by bench.procs


def started(src: Path, work: Path, cores: Cores, environment: dict[str, str] | None = None) -> Stack:
    """A stack whose processes run the ccgate in `src`."""
    os.environ["PYTHONPATH"] = str(src)
    return Stack(work, cores, environment=environment or {}).start()


def observing(args: argparse.Namespace, work: Path, receiver: Receiver | None) -> dict[str, str]:
    """The settings that turn on what `--access-log` and `--traces` ask for."""
    environment = {"CCGATE_ACCESS_LOG": str(work / "access.log")} if args.access_log else {}
    if receiver is not None:
        environment |= {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
                        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": str(args.traces)}
    return environment


def round_of(stacks: dict[str, Stack], targets: dict[str, Target], connections: int, seconds: int) -> dict[str, float]:
    """CPU microseconds per request of each stack's ccgate, both loaded at the same time."""
    clocks = {name: CpuClock(stack.gateway.pid) for name, stack in stacks.items()}
    for clock in clocks.values():
        clock.__enter__()
    loads = {name: subprocess.Popen(wrk_command(target, connections=connections, seconds=seconds),
                                    env=wrk_environment(target), stdout=subprocess.PIPE, text=True)
             for name, target in targets.items()}
    outputs = {name: load.communicate(timeout=seconds + 60)[0] for name, load in loads.items()}
    for clock in clocks.values():
        clock.__exit__(None, None, None)
    result = {}
    for name, output in outputs.items():
        answered = parse_wrk(output)
        if answered.non_2xx or answered.socket_errors or not answered.requests:
            raise RuntimeError(f"{name}: {answered}")
        result[name] = clocks[name].used / answered.requests * 1e6
    return result


def main() -> None:
    exit_on_termination()
    parser = argparse.ArgumentParser(prog="python -m bench.pair", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", required=True, help="the commit to compare the working tree with")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5, help="of load per round")
    parser.add_argument("--connections", type=int, default=16, help="per stack")
    parser.add_argument("--path", default="/v1/messages")
    parser.add_argument("--access-log", action="store_true", help="the working tree writes its access log")
    parser.add_argument("--traces", type=float, metavar="RATIO", help="the working tree traces this share of requests")
    args = parser.parse_args()
    commit = git("rev-parse", "--short", f"{args.rev}^{{commit}}")
    cores = Cores.of_this_machine()
    pin(os.getpid(), cores.load)
    names = (commit, "working tree")
    with tempfile.TemporaryDirectory(prefix="ccgate-pair-") as directory:
        work = Path(directory)
        bodies = Bodies(work, 100)
        stacks: dict[str, Stack] = {}
        receiver = Receiver() if args.traces is not None else None
        try:
            stacks[names[0]] = started(export_commit(commit, work), work / "a", cores)
            stacks[names[1]] = started(ROOT / "src", work / "b", cores, observing(args, work, receiver))
            targets = {name: Target(name, stack.gateway.url + args.path, bodies.small, stack.key)
                       for name, stack in stacks.items()}
            for target in targets.values():
                wrk(target, connections=args.connections, seconds=2)  # warm-up
            ratios = []
            for number in range(args.rounds):
                used = round_of(stacks, targets, args.connections, args.seconds)
                ratios.append(used[names[1]] / used[names[0]])
                print(f"round {number + 1}: {names[0]} {used[names[0]]:.0f} us, {names[1]} {used[names[1]]:.0f} us "
                      f"a request: {ratios[-1]:.3f}", flush=True)
        finally:
            for stack in stacks.values():
                stack.stop()
            if receiver is not None:
                receiver.stop()
    observed = " with its access log" if args.access_log else ""
    if args.traces is not None:
        observed += f"{' and' if observed else ' with'} traces of {args.traces:.0%} of requests"
    print(f"\n{args.path}: the working tree{observed} uses {statistics.median(ratios):.3f} x the CPU per request of "
          f"{commit} (median of {len(ratios)} rounds; {min(ratios):.3f}-{max(ratios):.3f})")


if __name__ == "__main__":
    main()
