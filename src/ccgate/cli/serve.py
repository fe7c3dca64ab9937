"""`ccgate serve` and `ccgate sim`: the gateway, and the Anthropic API simulator alone."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from ccgate.cli.common import command, whole
from ccgate.cli.listen import check_port_free, migrate_in_child, settle_public_url, uvicorn_options
from ccgate.config import Settings
from ccgate.ops import OperationError


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    from ccgate.app import create_app

    warning = settle_public_url(args.host, args.port)
    settings = Settings.from_env()
    if args.workers > 1 and not settings.redis_url:
        raise OperationError(
            "--workers above 1 needs CCGATE_REDIS_URL: the processes must share rate limits, leases, "
            "credit holds and cooldowns, or each would enforce its own")
    check_port_free(args.host, args.port)
    migrate_in_child()
    if warning:
        print(warning, file=sys.stderr, flush=True)
    print(f"ccgate listening on http://{args.host}:{args.port} with {args.workers} worker(s) "
          f"(data: {settings.data_dir}; users are told to call {settings.public_url})", flush=True)
    if args.workers > 1:
        os.environ["CCGATE_WORKERS"] = str(args.workers)  # read by each worker's Settings
        run_workers(args)
    else:
        uvicorn.Server(uvicorn.Config(create_app(settings), **uvicorn_options(args.host, args.port))).run()


def run_workers(args: argparse.Namespace) -> None:
    """uvicorn's worker processes, writing their metrics to one fresh directory that any of them sums
    at a scrape (the operator's PROMETHEUS_MULTIPROC_DIR if set, else a temporary one removed after)."""
    import uvicorn

    from ccgate.obs import metrics

    chosen = os.environ.get(metrics.MULTIPROC_ENV)
    directory = Path(chosen) if chosen else Path(tempfile.mkdtemp(prefix="ccgate-metrics-"))
    metrics.prepare_multiprocess_dir(directory)
    try:
        uvicorn.run("ccgate.app:create_app", factory=True, workers=args.workers,
                    **uvicorn_options(args.host, args.port))
    finally:
        if not chosen:
            shutil.rmtree(directory, ignore_errors=True)


def sim(args: argparse.Namespace) -> None:
    from ccgate.sim.config import SimConfig
    from ccgate.sim.server import run_sim

    config = SimConfig(latency_ms=args.latency_ms, ttft_ms=args.ttft_ms, tokens_per_sec=args.tokens_per_sec)
    print(f"Anthropic API simulator on http://{args.host}:{args.port}", flush=True)
    run_sim(args.host, args.port, config)


def register(commands: Any) -> None:
    parser = command(commands, "serve", serve, "run the gateway")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--workers", type=whole, default=1, help="processes sharing the port (above 1 needs Redis)")

    parser = command(commands, "sim", sim, "run the Anthropic API simulator alone")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--ttft-ms", type=float, default=0.0)
    parser.add_argument("--tokens-per-sec", type=float, default=0.0)
