"""Admin operations run in the test process exactly as `ccgate` runs them, without its start-up.

A `ccgate keys create` costs half a second to seconds (a Python start, the imports) on a busy machine;
the tests make hundreds of users, keys and accounts as set-up.  Here the CLI's own argument parser reads
the same arguments, and the CLI's own `operations_on` runs the operation over the gateway's database with
the gateway's settings: the change is committed, the change marker touched and, with Redis, announced and
confirmed by every server, as when the CLI runs.  Tests about the CLI itself still run it (Gateway.cli).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar
from unittest import mock

from ccgate.cli import parse
from ccgate.cli.common import ensure_schema, operations_on
from ccgate.config import Settings
from ccgate.ops import Operations

T = TypeVar("T")

_environment = threading.Lock()  # os.environ is the process's: one reader of a gateway's settings at a time


def cli_arguments(*argv: str) -> argparse.Namespace:
    """The arguments as `ccgate *argv` parses them."""
    return parse(list(argv))


def settings_of(env: dict[str, str]) -> tuple[Settings, bytes]:
    """The settings and server secret `ccgate` reads when started with the environment `env`."""
    differences = {name: value for name, value in env.items() if os.environ.get(name) != value}
    with _environment, mock.patch.dict(os.environ, differences):
        settings = Settings.from_env()
        return settings, settings.server_secret()


def run_operation(env: dict[str, str], action: Callable[[Operations], Awaitable[T]]) -> T:
    """Run `action` as `ccgate` started with the environment `env` runs its operation: on a database
    migrated to the newest schema, with the change marker and Redis announcing what it changed.  In a
    thread of its own, so it works from a test whose event loop is running too."""
    settings, secret = settings_of(env)

    def run() -> T:
        ensure_schema(settings.database_url)

        async def operate() -> T:
            async with operations_on(settings, secret) as ops:
                return await action(ops)

        return asyncio.run(operate())

    with ThreadPoolExecutor(1) as thread:
        return thread.submit(run).result()
