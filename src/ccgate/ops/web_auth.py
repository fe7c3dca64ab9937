"""Users of the dashboard: signing up, passwords, browser sessions."""

from __future__ import annotations

import asyncio
import hmac
import secrets
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from argon2.exceptions import InvalidHashError, VerificationError

from ccgate.ops.common import OperationError, check_password
from ccgate.ops.settings import SettingsOperations
from ccgate.ops.users import without_password
from ccgate.store import repo

SESSION_MS = 14 * 86_400_000


@dataclass(frozen=True)
class Session:
    """A signed-in browser: its user (without the password hash) and the token its forms carry."""

    user: dict[str, Any]
    csrf: str


class WebAuthOperations(SettingsOperations):
    async def sign_up(self, email: str, password: str, invite_code: str = "") -> int:
        """A user signing themselves up, under the operator's policy, prepaid with the starting credit."""
        settings = await self.web_settings()
        if settings.signup_mode == "closed":
            raise OperationError("sign-up is closed; ask the operator for an account")
        if settings.signup_mode == "invite" and not hmac.compare_digest(
                invite_code.strip().encode(), (settings.invite_code or "").strip().encode()):
            raise OperationError("that invite code is not valid")
        check_password(password)
        return await self.add_user(email, password=password, credit_usd=settings.starting_credit_micro / 1_000_000)

    @cached_property
    def _decoy_hash(self) -> str:
        """A hash to check passwords of unknown emails against, so they take as long as known ones."""
        return self.hasher.hash(secrets.token_urlsafe(16))

    def _password_matches(self, password_hash: str | None, password: str) -> bool:
        try:
            return self.hasher.verify(password_hash or self._decoy_hash, password) and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    async def verify_password(self, email: str, password: str) -> dict[str, Any] | None:
        """The user (without the password hash) if this is their password, else None."""
        async with self.engine.connect() as conn:
            user = await repo.user_by_email(conn, email.strip().lower())
        stored = user["password_hash"] if user else None
        matches = await asyncio.to_thread(self._password_matches, stored, password)  # unknown emails take as long
        if not matches or user is None:
            return None
        return without_password(user)

    async def change_password(self, email: str, current: str, new: str) -> None:
        """Replace a password once the current one is proven; every session of the user ends."""
        user = await self.verify_password(email, current)
        if user is None:
            raise OperationError("the current password is not right")
        check_password(new)
        password_hash = await asyncio.to_thread(self.hasher.hash, new)
        async with self._writing() as conn:
            await repo.update_user(conn, user["id"], {"password_hash": password_hash})
            await repo.delete_sessions_of(conn, user["id"])

    async def open_session(self, user_id: int) -> str:
        """A new browser session; returns its cookie value, which is stored only as an HMAC."""
        token = secrets.token_urlsafe(32)
        async with self._writing() as conn:
            await repo.delete_expired_sessions(conn)
            await repo.insert_session(conn, self.box.hash_key(token), user_id, secrets.token_urlsafe(32),
                                      repo.now_ms() + SESSION_MS)
        return token

    async def session(self, token: str) -> Session | None:
        """The live session of this cookie value; None once it expired, ended or its user was disabled."""
        async with self.engine.connect() as conn:
            found = await repo.live_session(conn, self.box.hash_key(token))
        if found is None or found[1]["disabled"]:
            return None
        csrf, user = found
        return Session(user, csrf)

    async def close_session(self, token: str) -> None:
        async with self._writing() as conn:
            await repo.delete_session(conn, self.box.hash_key(token))
