"""What every command shares: declaring a command, running an operation, argument types, money."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from ccgate.config import Settings
from ccgate.crypto import SecretBox
from ccgate.ops import Operations
from ccgate.store.db import at_head, create_engine, migrate

Handler = Callable[[argparse.Namespace], None]


def command(commands: Any, name: str, handler: Handler, help: str, **defaults: Any) -> argparse.ArgumentParser:
    """A subcommand running `handler`; it remembers its own parser, so a wrong flag shows its own usage."""
    parser: argparse.ArgumentParser = commands.add_parser(name, help=help, description=help)
    parser.set_defaults(func=handler, parser=parser, **defaults)
    return parser


def group(commands: Any, name: str, help: str) -> Any:
    """A command made of subcommands, e.g. `keys` of `keys create`."""
    parser = commands.add_parser(name, help=help, description=help)
    return parser.add_subparsers(dest="action", required=True)


def ensure_schema(database_url: str) -> None:
    """Migrate the database unless it has the newest schema already (Alembic is loaded only then)."""

    async def schema_is_current() -> bool:
        engine = create_engine(database_url)
        try:
            return await at_head(engine)
        finally:
            await engine.dispose()

    if not asyncio.run(schema_is_current()):
        migrate(database_url)


@asynccontextmanager
async def operations_on(settings: Settings, secret: bytes) -> AsyncIterator[Operations]:
    """Operations over the settings' database; a change is announced through Redis, when there is one,
    so running servers reload at once."""
    from ccgate.broadcast import ACKS, CONFIGURATION, announce_change, redis_client

    engine = create_engine(settings.database_url)
    redis = redis_client(settings.redis_url) if settings.redis_url else None
    prefix = settings.redis_prefix
    announce = partial(announce_change, redis, prefix + CONFIGURATION, prefix + ACKS) if redis else None
    try:
        yield Operations(engine, SecretBox(secret), settings, announce)
    finally:
        await engine.dispose()
        if redis is not None:
            await redis.aclose()


def with_operations(action: Callable[[Operations], Awaitable[None]]) -> None:
    """Migrate the database, then run one operation against it."""
    settings = Settings.from_env()
    ensure_schema(settings.database_url)

    async def run() -> None:
        async with operations_on(settings, settings.server_secret()) as ops:
            await action(ops)

    asyncio.run(run())


def usd(micro: int, *, signed: bool = False) -> str:
    """Micro-dollars as money: two decimals at least, more when they matter ($0.50, $0.000125, -$1.00)."""
    digits = f"{abs(micro) / 1_000_000:.6f}".rstrip("0")
    whole, _, cents = digits.partition(".")
    text = f"${whole}.{cents.ljust(2, '0')}"
    if micro < 0:
        return "-" + text
    return "+" + text if signed else text


def whole(text: str) -> int:
    """A whole number, 0 or more."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"must be a whole number, 0 or more: {text!r}")
    return int(text)


def dollars(*, allow_negative: bool) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an amount of dollars: {text!r}") from None
        if value != value or value in (float("inf"), float("-inf")) or (value < 0 and not allow_negative):
            raise argparse.ArgumentTypeError(f"not a usable amount of dollars: {text!r}")
        return value

    return parse


def model_list(text: str) -> list[str]:
    return [model.strip() for model in text.split(",") if model.strip()]
