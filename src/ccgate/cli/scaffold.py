"""`ccgate scaffold`: a small client project for a key."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ccgate.cli.common import command
from ccgate.config import Settings


def scaffold_project(args: argparse.Namespace) -> None:
    from ccgate.scaffold import ScaffoldError, scaffold

    base_url = args.base_url or Settings.from_env().public_url
    try:
        written = scaffold(Path(args.directory), args.lang, key=args.key, base_url=base_url)
    except ScaffoldError as error:
        print(f"ccgate: {error}", file=sys.stderr)
        sys.exit(2)
    print(f"wrote a {args.lang} project for {base_url} into {args.directory}:")
    for path in written:
        print(f"  {path}")
    print(f"next: cd {args.directory} and follow README.md")


def register(commands: Any) -> None:
    parser = command(commands, "scaffold", scaffold_project,
                     "write a small client project (.env, examples, README) for a key")
    parser.add_argument("directory")
    parser.add_argument("--lang", choices=("python", "node"), default="python")
    parser.add_argument("--key", help="the gateway key to put in .env (else a placeholder)")
    parser.add_argument("--base-url", help="the gateway's URL (default: CCGATE_PUBLIC_URL)")
