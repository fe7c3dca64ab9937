"""Client keys as admission sees them: an in-memory directory keyed by HMAC."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from ccgate.store import repo
from ccgate.store.rows import split_list


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """An unrevoked key with its limits and the facts of its user."""

    id: str
    user_id: int
    name: str
    display: str
    expires_ms: int | None
    rpm: int | None
    concurrency: int | None
    token_budget: int | None
    window_seconds: int | None
    models: frozenset[str] | None
    user_disabled: bool
    prepaid: bool
    is_admin: bool = False
    cache_enabled: bool = True
    overdraft_micro: int | None = None  # the user's own overdraft; None: the operator's default


class KeyDirectory:
    """Every live key by its hash; rebuilt whole when the configuration version changes."""

    def __init__(self, records: dict[str, KeyRecord], revoked: frozenset[str] = frozenset()) -> None:
        self._by_hash = records
        self._revoked = revoked

    def lookup(self, key_hash: str) -> KeyRecord | None:
        return self._by_hash.get(key_hash)

    def was_revoked(self, key_hash: str) -> bool:
        return key_hash in self._revoked

    @classmethod
    async def load(cls, conn: AsyncConnection) -> KeyDirectory:
        records = {}
        for row in await repo.load_live_keys(conn):
            records[row["key_hash"]] = KeyRecord(
                id=row["id"], user_id=row["user_id"], name=row["name"], display=row["display"],
                expires_ms=row["expires_ms"], rpm=row["rpm"], concurrency=row["concurrency"],
                token_budget=row["token_budget"], window_seconds=row["window_seconds"],
                models=split_list(row["models"]), user_disabled=row["user_disabled"],
                prepaid=row["balance_micro"] is not None, is_admin=row["is_admin"],
                cache_enabled=row["cache_enabled"], overdraft_micro=row["overdraft_micro"],
            )
        return cls(records, frozenset(await repo.revoked_key_hashes(conn)))
