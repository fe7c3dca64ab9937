"""`make bench-profile`: where ccgate's time goes, sampled by py-spy while wrk loads it.

    python -m bench.profile [--path /v1/chat/completions] [--connections 1] [--native] [--seconds 10]

Starts the benchmark's stack (simulator, ccgate pinned to its core, all rules on), runs wrk on one
route, records ccgate's process with py-spy, and prints the functions that took the most samples,
by themselves and with what they call.  The collapsed stacks are kept for flame graphs.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bench.bodies import Bodies
from bench.load import Target, wrk, wrk_command, wrk_environment
from bench.procs import Cores, Stack, pin

FRAME = re.compile(r"(?P<function>.*) \((?P<file>.*?):\d+\)$")


def short(frame: str) -> str:
    """`function (file.py:12)` with the file's path cut to its package."""
    match = FRAME.match(frame)
    if match is None:
        return frame
    path = match["file"].split("site-packages/")[-1].split("/src/")[-1]
    return f"{match['function']} ({path})"


def top_functions(collapsed: Path, thread: str) -> tuple[int, Counter, Counter]:
    """Samples of the stacks that pass through `thread` (a frame name), and per function the samples
    in which it was running itself, and in which it was on the stack."""
    own, total, samples = Counter(), Counter(), 0
    for line in collapsed.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if thread not in stack:
            continue
        frames = [short(frame) for frame in stack.split(";")]
        samples += int(number)
        own[frames[-1]] += int(number)
        for frame in set(frames):
            total[frame] += int(number)
    return samples, own, total


def record(pid: int, seconds: int, native: bool, out: Path) -> None:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    command = [py_spy, "record", "-p", str(pid), "-d", str(seconds), "-r", "250", "-f", "raw", "-o", str(out)]
    # py-spy pauses the process for each sample: without that (--nonblocking) most samples fail and
    # the ones that succeed are biased towards system calls.
    result = subprocess.run(command + (["--native"] if native else []), capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"py-spy failed: {result.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--path", default="/v1/messages", help="the route to load")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--stream", action="store_true", help="streams of ~400 tokens instead of small answers")
    parser.add_argument("--native", action="store_true", help="also sample C frames (the GC, syscalls, uvloop)")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "ccgate-profile.txt",
                        help="where to keep the collapsed stacks (flamegraph.pl's input)")
    args = parser.parse_args()
    cores = Cores.of_this_machine()
    pin(os.getpid(), cores.load)
    with tempfile.TemporaryDirectory(prefix="ccgate-profile-") as work:
        bodies = Bodies(Path(work), 100)
        stack = Stack(Path(work) / "data", cores)
        try:
            stack.start()
            target = Target("ccgate", stack.gateway.url + args.path, bodies.events if args.stream else bodies.small,
                            stack.key)
            wrk(target, connections=args.connections, seconds=2)
            load = subprocess.Popen(wrk_command(target, connections=args.connections, seconds=args.seconds + 2),
                                    env=wrk_environment(target), stdout=subprocess.DEVNULL)
            record(stack.gateway.pid, args.seconds, args.native, args.out)
            load.wait()
        finally:
            stack.stop()
    for thread, name in (("Runner.run", "the event loop's thread"), ("Thread._bootstrap", "other threads")):
        samples, own, total = top_functions(args.out, thread)
        print(f"\n{name}: {samples} samples\n  self  total  function")
        for function, number in own.most_common(args.top):
            print(f"{100 * number / samples:5.1f}% {100 * total[function] / samples:5.1f}%  {function}")
    print(f"\ncollapsed stacks: {args.out}")


if __name__ == "__main__":
    main()
