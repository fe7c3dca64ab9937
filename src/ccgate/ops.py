"""Administrative operations: the one implementation behind the CLI, the admin API and the console.

Each change bumps the configuration version in the same transaction, so every running
server reloads it within its reload interval.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

from argon2 import PasswordHasher
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from ccgate.config import Settings
from ccgate.crypto import SecretBox, mask_key, new_api_key
from ccgate.gate.durations import parse_duration
from ccgate.ids import random_base62
from ccgate.store import repo

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
DEFAULT_BASE_URL = "https://api.anthropic.com"


class OperationError(Exception):
    """An operation refused, with a message for the operator; nothing was changed."""


@dataclass(frozen=True)
class KeyLimits:
    """Limits given for a key; None leaves a field as it is (on update) or to the operator default."""

    rpm: int | None = None
    concurrency: int | None = None
    token_budget: int | None = None
    window: str | None = None
    models: list[str] | None = None
    expires: str | None = None

    def columns(self, known_models: set[str]) -> dict:
        """The api_keys columns these limits set, validated; raises OperationError."""
        values: dict = {}
        for name in ("rpm", "concurrency", "token_budget"):
            value = getattr(self, name)
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise OperationError(f"{name.replace('_', '-')} must be a whole number, 0 or more (0 is unlimited)")
                values[name] = value
        if self.window is not None:
            try:
                values["window_seconds"] = parse_duration(self.window)
            except ValueError as error:
                raise OperationError(f"window: {error}") from None
        if self.models is not None:
            unknown = [model for model in self.models if model not in known_models]
            if unknown:
                raise OperationError(f"unknown model: {', '.join(unknown)}")
            values["models"] = ",".join(self.models) or None
        if self.expires is not None:
            values["expires_ms"] = parse_expiry(self.expires) if self.expires else None
        return values


def parse_expiry(text: str) -> int:
    """Epoch ms of an ISO date (midnight UTC) or date-time, which must lie in the future."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise OperationError(f"expires: not a date: {text!r} (use e.g. 2027-01-31 or 2027-01-31T12:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    expires_ms = int(moment.timestamp() * 1000)
    if expires_ms <= repo.now_ms():
        raise OperationError(f"expires: {text} is in the past")
    return expires_ms


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

    async def users(self) -> list[dict]:
        async with self.engine.connect() as conn:
            return [{k: v for k, v in row.items() if k != "password_hash"} for row in await repo.all_users(conn)]

    async def set_user_disabled(self, email: str, disabled: bool) -> None:
        user = await self.user(email)
        async with self.engine.begin() as conn:
            await repo.update_user(conn, user["id"], {"disabled": disabled})
            await repo.bump_version(conn)

    # -- credit ----------------------------------------------------------------------------------

    async def grant_credit(self, email: str, usd: float, note: str | None = None) -> int:
        """Add (or, negative, take back) credit; returns the new balance in micro-dollars."""
        user = await self.user(email)
        amount = usd_to_micro(usd)
        if amount == 0:
            raise OperationError("a grant of $0 changes nothing")
        async with self.engine.begin() as conn:
            balance = await repo.change_balance(conn, user["id"], amount)
            if balance is None:
                raise OperationError(f"a correction of ${usd} would take {email} below zero")
            await repo.insert_ledger(conn, user["id"], "grant" if amount > 0 else "correction", amount, note)
            await repo.bump_version(conn)
        return balance

    async def create_codes(self, usd: float, count: int = 1, note: str | None = None) -> list[str]:
        """New redemption codes worth `usd` each, shown this once."""
        if usd <= 0 or not 1 <= count <= 1000:
            raise OperationError("a code is worth more than $0, and 1 to 1000 are made at a time")
        codes = ["CC-" + "-".join(random_base62(5).upper() for _ in range(4)) for _ in range(count)]
        async with self.engine.begin() as conn:
            await repo.insert_codes(conn, [
                {"id": "code_" + random_base62(12), "code_hash": self.box.hash_key(code),
                 "amount_micro": usd_to_micro(usd), "note": note} for code in codes])
        return codes

    async def redeem_code(self, user_id: int, code: str) -> int:
        """Credit a user with an unredeemed code; returns the new balance."""
        async with self.engine.begin() as conn:
            amount = await repo.claim_code(conn, self.box.hash_key(code.strip().upper()), user_id)
            if amount is None:
                raise OperationError("no such code, or it was redeemed already")
            balance = await repo.change_balance(conn, user_id, amount)
            await repo.insert_ledger(conn, user_id, "redeem", amount, "redemption code")
            await repo.bump_version(conn)
        return balance

    async def ledger(self, email: str) -> list[dict]:
        user = await self.user(email)
        async with self.engine.connect() as conn:
            return await repo.ledger_of(conn, user["id"])

    async def codes(self) -> list[dict]:
        async with self.engine.connect() as conn:
            return await repo.all_codes(conn)

    async def usage_summary(self, **filters) -> list[dict]:
        async with self.engine.connect() as conn:
            return await repo.usage_summary(conn, **filters)

    # -- keys ------------------------------------------------------------------------------------

    async def _known_models(self) -> set[str]:
        async with self.engine.connect() as conn:
            return {name for row, aliases in await repo.enabled_models(conn) for name in (row["id"], *aliases)}

    async def create_key(self, email: str, *, name: str = "", limits: KeyLimits | None = None) -> NewKey:
        columns = (limits or KeyLimits()).columns(await self._known_models())
        user = await self.user(email)
        plaintext = new_api_key(self.settings.key_prefix)
        key_id = "key_" + random_base62(16)
        display = mask_key(plaintext, self.settings.key_prefix)
        async with self.engine.begin() as conn:
            await repo.insert_key(conn, {
                "id": key_id, "user_id": user["id"], "name": name, "key_hash": self.box.hash_key(plaintext),
                "display": display, **columns,
            })
            await repo.bump_version(conn)
        return NewKey(key_id, display, plaintext)

    async def list_keys(self, email: str) -> list[dict]:
        user = await self.user(email)
        async with self.engine.connect() as conn:
            return await repo.keys_of_user(conn, user["id"])

    async def update_key(self, key_id: str, limits: KeyLimits, *, name: str | None = None) -> None:
        columns = limits.columns(await self._known_models())
        if name is not None:
            columns["name"] = name
        async with self.engine.begin() as conn:
            if await repo.key_by_id(conn, key_id) is None:
                raise OperationError(f"no key {key_id}")
            if columns:
                await repo.update_key(conn, key_id, columns)
                await repo.bump_version(conn)

    async def key_owned_by(self, key_id: str, user_id: int) -> dict:
        """A key of this user; any other key is reported as absent."""
        async with self.engine.connect() as conn:
            key = await repo.key_by_id(conn, key_id)
        if key is None or key["user_id"] != user_id:
            raise OperationError(f"no key {key_id}")
        return key

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
