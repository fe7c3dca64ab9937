"""Users: adding, finding, listing, disabling."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy.exc import IntegrityError

from ccgate.ops.common import EMAIL, OperationError, OperationsBase, check_password, usd_to_micro
from ccgate.store import repo

MAX_OVERDRAFT_USD = 1_000_000


def without_password(user: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in user.items() if k != "password_hash"}


class UserOperations(OperationsBase):
    async def add_user(self, email: str, *, password: str | None = None, admin: bool = False,
                       credit_usd: float | None = None) -> int:
        email = email.strip().lower()
        if not EMAIL.match(email):
            raise OperationError(f"not an email address: {email!r}")
        if credit_usd is not None and credit_usd < 0:
            raise OperationError("credit cannot be negative")
        password_hash = await asyncio.to_thread(self.hasher.hash, password) if password else None
        balance = usd_to_micro(credit_usd) if credit_usd is not None else None
        try:
            async with self._changing() as conn:
                user_id = await repo.insert_user(conn, email, password_hash, admin, balance)
                if balance:
                    await repo.insert_ledger(conn, user_id, "grant", balance, "starting credit")
        except IntegrityError:
            raise OperationError(f"a user {email} exists already") from None
        return user_id

    async def user(self, email: str) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            found = await repo.user_by_email(conn, email.strip().lower())
        if found is None:
            raise OperationError(f"no user {email}")
        return found

    async def users(self) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            return [without_password(row) for row in await repo.all_users(conn)]

    async def set_user_disabled(self, email: str, disabled: bool) -> None:
        user = await self.user(email)
        async with self._changing() as conn:
            await repo.update_user(conn, user["id"], {"disabled": disabled})

    async def set_overdraft(self, email: str, usd: float | None) -> int | None:
        """How far below zero a prepaid user's balance may go, in USD; None: the operator's default.
        Returns the stored value in micro-dollars."""
        if usd is not None and not 0 <= usd <= MAX_OVERDRAFT_USD:  # NaN fails too
            raise OperationError(f"an overdraft is $0 to ${MAX_OVERDRAFT_USD:,} (or default), not {usd}")
        user = await self.user(email)
        overdraft = usd_to_micro(usd) if usd is not None else None
        async with self._changing() as conn:
            await repo.update_user(conn, user["id"], {"overdraft_micro": overdraft})
        return overdraft

    async def set_password(self, email: str, password: str) -> None:
        """The operator sets a user's password (every session of the user ends)."""
        check_password(password)
        user = await self.user(email)
        password_hash = await asyncio.to_thread(self.hasher.hash, password)
        async with self._writing() as conn:
            await repo.update_user(conn, user["id"], {"password_hash": password_hash})
            await repo.delete_sessions_of(conn, user["id"])
