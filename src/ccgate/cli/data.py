"""`ccgate migrate` and `ccgate backup`: the database's schema, and a copy of it."""

from __future__ import annotations

import argparse
import logging
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from ccgate.cli.common import command
from ccgate.config import SECRET_FILE, Settings
from ccgate.ops import OperationError
from ccgate.store.db import migrate


def migrate_database(args: argparse.Namespace) -> None:
    if args.quiet:
        logging.getLogger("alembic").setLevel(logging.WARNING)
    migrate(Settings.from_env().database_url)
    if not args.quiet:
        print("database is at the newest schema")


def sqlite_path(database_url: str) -> Path:
    """The file of an embedded database; PostgreSQL has its own tool."""
    if not database_url.startswith("sqlite"):
        raise OperationError("the database is PostgreSQL: back it up with pg_dump (e.g. pg_dump --format=custom "
                             "--file=ccgate.dump DATABASE), and restore it with pg_restore; `ccgate backup` copies "
                             "the embedded SQLite database only")
    return Path(database_url.split(":///", 1)[1])


def backup(args: argparse.Namespace) -> None:
    """A consistent copy of the SQLite database, taken with SQLite's online backup while servers run."""
    settings = Settings.from_env()
    source = sqlite_path(settings.database_url)
    target = Path(args.path)
    if not source.exists():
        raise OperationError(f"no database at {source}")
    if target.exists():
        raise OperationError(f"{target} exists already; give a new file")
    with closing(sqlite3.connect(source)) as live, closing(sqlite3.connect(target)) as copy:
        live.backup(copy)
    print(f"database backed up to {target}")
    print(f"keep the server secret too ({settings.data_dir / SECRET_FILE}, or CCGATE_SECRET): keys are HMACs "
          "of it and account keys are encrypted with it; without it the backup cannot serve")


def register(commands: Any) -> None:
    parser = command(commands, "migrate", migrate_database, "bring the database to the newest schema")
    parser.add_argument("--quiet", action="store_true", help="print only errors")
    parser = command(commands, "backup", backup, "copy the SQLite database, online (PostgreSQL: use pg_dump)")
    parser.add_argument("path", help="the new file to write")
