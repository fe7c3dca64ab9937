"""Prepaid credit: grants, corrections, the ledger."""

from __future__ import annotations

from typing import Any

from ccgate.ops.common import OperationError, usd_to_micro
from ccgate.ops.users import UserOperations
from ccgate.store import repo


class CreditOperations(UserOperations):
    async def grant_credit(self, email: str, usd: float, note: str | None = None) -> int:
        """Add (or, negative, take back) credit; returns the new balance in micro-dollars."""
        user = await self.user(email)
        amount = usd_to_micro(usd)
        if amount == 0:
            raise OperationError("a grant of $0 changes nothing")
        async with self._changing() as conn:
            balance = await repo.change_balance(conn, user["id"], amount)
            if balance is None:
                raise OperationError(f"a correction of ${usd} would take {email} below zero")
            await repo.insert_ledger(conn, user["id"], "grant" if amount > 0 else "correction", amount, note)
        return balance

    async def ledger(self, email: str) -> list[dict[str, Any]]:
        user = await self.user(email)
        async with self.engine.connect() as conn:
            return await repo.ledger_of(conn, user["id"])
