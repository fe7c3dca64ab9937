"""Engine creation and schema migration for SQLite and PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import event, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


class Cursor(Protocol):
    def execute(self, sql: str, /) -> object: ...

    def close(self) -> None: ...


class Connection(Protocol):
    """A DB-API connection: SQLAlchemy's pool hands one over, the ledger writer opens its own."""

    def cursor(self) -> Cursor: ...


def sqlite_pragmas(dbapi_connection: Connection, _record: object) -> None:
    """WAL survives kill -9 with synchronous=NORMAL; writers from the CLI wait, not fail."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def private_database_file(path: Path) -> None:
    """Only the server's user may read the SQLite database (keys' hashes, encrypted credentials, usage):
    a directory made for it is 0700, the file 0600 (SQLite gives its -wal and -shm files the same mode)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)


def create_engine(url: str) -> AsyncEngine:
    """An async engine; SQLite gets its data directory created and its pragmas set."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and path != ":memory:":
            private_database_file(Path(path))
        engine = create_async_engine(url)
        event.listen(engine.sync_engine, "connect", sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


def alembic_config(url: str) -> Config:
    """Alembic configuration pointing at the packaged migrations (imported only when migrating: a
    serving process need not carry Alembic)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


# The newest migration (store/migrations/versions): tests/test_store.py checks it is Alembic's head.
HEAD_REVISION = "0008"


def migrate(url: str) -> None:
    """Bring the database at `url` to the newest schema (blocking; runs its own event loop)."""
    from alembic import command

    command.upgrade(alembic_config(url), "head")


async def at_head(engine: AsyncEngine) -> bool:
    """Whether the database already has the newest schema: one query, without loading Alembic."""
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar() == HEAD_REVISION
    except SQLAlchemyError:  # no database or no alembic_version table yet
        return False
