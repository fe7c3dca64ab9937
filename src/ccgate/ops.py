"""Administrative operations: the one implementation behind the CLI, the admin API and the console.

Each change bumps the configuration version in the same transaction, so every running
server reloads it within its reload interval.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from argon2 import PasswordHasher
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from ccgate.config import Settings
from ccgate.crypto import SecretBox, mask_key, new_api_key
from ccgate.ids import random_base62
from ccgate.store import repo

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
DEFAULT_BASE_URL = "https://api.anthropic.com"


class OperationError(Exception):
    """An operation refused, with a message for the operator; nothing was changed."""


@dataclass(frozen=True)
class NewKey:
    """A key just created: its record, and the plaintext shown this one time."""

    id: str
    display: str
    plaintext: str


def usd_to_micro(usd: float) -> int:
    return round(usd * 1_000_000)


class Operations:
    def __init__(self, engine: AsyncEngine, box: SecretBox, settings: Settings) -> None:
        self.engine = engine
        self.box = box
        self.settings = settings
        self.hasher = PasswordHasher()

    # -- users -----------------------------------------------------------------------------------

    async def add_user(self, email: str, *, password: str | None = None, admin: bool = False,
                       credit_usd: float | None = None) -> int:
        email = email.strip().lower()
        if not EMAIL.match(email):
            raise OperationError(f"not an email address: {email!r}")
        if credit_usd is not None and credit_usd < 0:
            raise OperationError("credit cannot be negative")
        password_hash = self.hasher.hash(password) if password else None
        balance = usd_to_micro(credit_usd) if credit_usd is not None else None
        try:
            async with self.engine.begin() as conn:
                user_id = await repo.insert_user(conn, email, password_hash, admin, balance)
                if balance:
                    await repo.insert_ledger(conn, user_id, "grant", balance, "starting credit")
                await repo.bump_version(conn)
        except IntegrityError:
            raise OperationError(f"a user {email} exists already") from None
        return user_id

    async def user(self, email: str) -> dict:
        async with self.engine.connect() as conn:
            found = await repo.user_by_email(conn, email.strip().lower())
        if found is None:
            raise OperationError(f"no user {email}")
        return found

    # -- keys ------------------------------------------------------------------------------------

    async def create_key(self, email: str, *, name: str = "", limits: dict | None = None) -> NewKey:
        user = await self.user(email)
        plaintext = new_api_key(self.settings.key_prefix)
        key_id = "key_" + random_base62(16)
        display = mask_key(plaintext, self.settings.key_prefix)
        async with self.engine.begin() as conn:
            await repo.insert_key(conn, {
                "id": key_id, "user_id": user["id"], "name": name, "key_hash": self.box.hash_key(plaintext),
                "display": display, **(limits or {}),
            })
            await repo.bump_version(conn)
        return NewKey(key_id, display, plaintext)

    async def list_keys(self, email: str) -> list[dict]:
        user = await self.user(email)
        async with self.engine.connect() as conn:
            return await repo.keys_of_user(conn, user["id"])

    async def revoke_key(self, key_id: str) -> None:
        async with self.engine.begin() as conn:
            key = await repo.key_by_id(conn, key_id)
            if key is None:
                raise OperationError(f"no key {key_id}")
            if key["revoked_ms"] is None:
                await repo.update_key(conn, key_id, {"revoked_ms": repo.now_ms()})
                await repo.bump_version(conn)

    # -- upstream accounts -----------------------------------------------------------------------

    async def add_account(self, name: str, api_key: str, *, base_url: str = DEFAULT_BASE_URL,
                          models: list[str] | None = None, priority: int = 0, weight: int = 1,
                          rpm: int | None = None, concurrency: int | None = None) -> int:
        if not name.strip() or not api_key.strip():
            raise OperationError("an account needs a name and an API key")
        if not base_url.startswith(("http://", "https://")):
            raise OperationError(f"base URL must start with http:// or https://: {base_url!r}")
        if weight < 1 or priority < 0 or (rpm is not None and rpm < 0) or (concurrency is not None and concurrency < 0):
            raise OperationError("weight must be at least 1; priority, rpm and concurrency not negative")
        try:
            async with self.engine.begin() as conn:
                account_id = await repo.insert_account(conn, {
                    "name": name.strip(), "api_key_enc": self.box.encrypt(api_key.strip()),
                    "base_url": base_url.rstrip("/"), "models": ",".join(models) if models else None,
                    "priority": priority, "weight": weight, "rpm": rpm or None,
                    "concurrency": concurrency or None, "enabled": True,
                })
                await repo.bump_version(conn)
        except IntegrityError:
            raise OperationError(f"an account named {name} exists already") from None
        return account_id

    async def list_accounts(self) -> list[dict]:
        """Accounts without their credentials."""
        async with self.engine.connect() as conn:
            rows = await repo.all_accounts(conn)
        return [{k: v for k, v in row.items() if k != "api_key_enc"} for row in rows]

    async def update_account(self, name: str, **values) -> None:
        if "api_key" in values:
            values["api_key_enc"] = self.box.encrypt(values.pop("api_key"))
        async with self.engine.begin() as conn:
            if not await repo.update_account(conn, name, values):
                raise OperationError(f"no account {name}")
            await repo.bump_version(conn)

    async def set_account_enabled(self, name: str, enabled: bool, reason: str | None = None) -> None:
        await self.update_account(name, enabled=enabled, disabled_reason=None if enabled else reason)
