"""What every concern of the operations shares: the error, the constants, money conversion, and the
base that holds the engine and knows how to write a change."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from argon2 import PasswordHasher
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ccgate.config import Settings
from ccgate.crypto import SecretBox
from ccgate.store import repo
from ccgate.store.change_marker import ChangeMarker

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
DEFAULT_BASE_URL = "https://api.anthropic.com"
PASSWORD_CHARS = range(8, 1025)


class OperationError(Exception):
    """An operation refused, with a message for the operator; nothing was changed."""


def usd_to_micro(usd: float) -> int:
    return round(usd * 1_000_000)


def check_password(password: str) -> None:
    if len(password) not in PASSWORD_CHARS:
        raise OperationError(f"a password has {PASSWORD_CHARS.start} to {PASSWORD_CHARS.stop - 1} characters")


class OperationsBase:
    """The database, the secret box and the settings every operation works with."""

    def __init__(self, engine: AsyncEngine, box: SecretBox, settings: Settings,
                 announce: Callable[[], Awaitable[object]] | None = None) -> None:
        self.engine = engine
        self.box = box
        self.settings = settings
        self.hasher = PasswordHasher()
        self._announce = announce  # tells every server at once that the configuration changed
        self.marker = ChangeMarker(settings.data_dir)  # ... and every server on this host, at its next request

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncConnection]:
        """A transaction; if it changed the configuration, every server is told once it is committed: those
        on this host through the change marker, the others through Redis, confirmed."""
        async with self.engine.begin() as conn:
            try:
                yield conn
                changed = repo.version_bumped(conn)
            finally:
                repo.forget_bump(conn)
        if changed:
            self.marker.touch()
            if self._announce is not None:
                await self._announce()

    @asynccontextmanager
    async def _changing(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that changes the configuration: it bumps the version in the same transaction, so
        every server reloads (and, with Redis, is told at once after the commit)."""
        async with self._writing() as conn:
            yield conn
            await repo.bump_version(conn)
