"""API keys: their limits, creation, listing, changes, revocation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ccgate.crypto import mask_key, new_api_key
from ccgate.gate.durations import parse_duration
from ccgate.ids import random_base62
from ccgate.ops.common import OperationError
from ccgate.ops.users import UserOperations
from ccgate.store import repo


@dataclass(frozen=True)
class KeyLimits:
    """Limits given for a key; None leaves a field as it is (on update) or to the operator default."""

    rpm: int | None = None
    concurrency: int | None = None
    token_budget: int | None = None
    window: str | None = None
    models: list[str] | None = None
    expires: str | None = None
    cache: bool | None = None  # the response cache for this key's requests

    def columns(self, known_models: set[str]) -> dict[str, Any]:
        """The api_keys columns these limits set, validated; raises OperationError."""
        values: dict[str, Any] = {}
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
        if self.cache is not None:
            values["cache_enabled"] = self.cache
        return values


def parse_expiry(text: str) -> int:
    """Epoch ms of an ISO date (midnight UTC) or date-time, which must lie in the future."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise OperationError(f"expires: not a date: {text!r} (use e.g. 2027-01-31 or 2027-01-31T12:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
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


class KeyOperations(UserOperations):
    async def _known_models(self) -> set[str]:
        async with self.engine.connect() as conn:
            return {name for row, aliases in await repo.enabled_models(conn) for name in (row["id"], *aliases)}

    def _no_key(self, key_id: str) -> OperationError:
        """The refusal for a key id that names no key; a whole key given instead is not echoed back."""
        if key_id.startswith(self.settings.key_prefix):
            return OperationError("that is a key itself; this takes the key's id (key_..., shown by `keys list`)")
        return OperationError(f"no key {key_id}")

    async def create_key(self, email: str, *, name: str = "", limits: KeyLimits | None = None) -> NewKey:
        columns = (limits or KeyLimits()).columns(await self._known_models())
        user = await self.user(email)
        plaintext = new_api_key(self.settings.key_prefix)
        key_id = "key_" + random_base62(16)
        display = mask_key(plaintext, self.settings.key_prefix)
        async with self._changing() as conn:
            await repo.insert_key(conn, {
                "id": key_id, "user_id": user["id"], "name": name, "key_hash": self.box.hash_key(plaintext),
                "display": display, **columns,
            })
        return NewKey(key_id, display, plaintext)

    async def list_keys(self, email: str) -> list[dict[str, Any]]:
        user = await self.user(email)
        async with self.engine.connect() as conn:
            return await repo.keys_of_user(conn, user["id"])

    async def update_key(self, key_id: str, limits: KeyLimits, *, name: str | None = None) -> None:
        columns = limits.columns(await self._known_models())
        if name is not None:
            columns["name"] = name
        async with self._changing() as conn:
            if await repo.key_by_id(conn, key_id) is None:
                raise self._no_key(key_id)
            if columns:
                await repo.update_key(conn, key_id, columns)

    async def key_owned_by(self, key_id: str, user_id: int) -> dict[str, Any]:
        """A key of this user; any other key is reported as absent."""
        async with self.engine.connect() as conn:
            key = await repo.key_by_id(conn, key_id)
        if key is None or key["user_id"] != user_id:
            raise self._no_key(key_id)
        return key

    async def revoke_key(self, key_id: str) -> None:
        async with self._changing() as conn:
            key = await repo.key_by_id(conn, key_id)
            if key is None:
                raise self._no_key(key_id)
            if key["revoked_ms"] is None:
                await repo.update_key(conn, key_id, {"revoked_ms": repo.now_ms()})
