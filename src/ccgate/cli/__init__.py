"""The `ccgate` command line: one module per group of commands, each declaring its commands next to
their arguments (argparse, from the standard library: no dependency for a parser, and subparsers
give each command its own usage)."""

from __future__ import annotations

import argparse
import logging
import sys

from ccgate.cli import accounts, alerts, billing, data, demo, keys, models, scaffold, serve, settings, users
from ccgate.config import SettingsError
from ccgate.ops import OperationError

MODULES = (serve, demo, data, scaffold, users, keys, settings, accounts, models, billing, alerts)
SERVICES = {"serve", "sim", "demo", "migrate"}  # commands that log their progress; the others print results


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ccgate", description="Self-hosted API gateway for Claude.")
    commands = parser.add_subparsers(dest="command", required=True)
    for module in MODULES:
        module.register(commands)
    return parser


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The arguments; a flag the command does not know is refused with that command's own usage."""
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:
        args.parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO if args.command in SERVICES else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    try:
        args.func(args)
    except (OperationError, SettingsError) as error:
        print(f"ccgate: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        pass
