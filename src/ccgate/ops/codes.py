"""Redemption codes: made by the operator, redeemed by users for credit."""

from __future__ import annotations

from typing import Any

from ccgate.ids import random_base62
from ccgate.ops.common import OperationError, OperationsBase, usd_to_micro
from ccgate.store import repo


class CodeOperations(OperationsBase):
    async def create_codes(self, usd: float, count: int = 1, note: str | None = None) -> list[str]:
        """New redemption codes worth `usd` each, shown this once."""
        if usd <= 0 or not 1 <= count <= 1000:
            raise OperationError("a code is worth more than $0, and 1 to 1000 are made at a time")
        codes = ["CC-" + "-".join(random_base62(5).upper() for _ in range(4)) for _ in range(count)]
        async with self._writing() as conn:
            await repo.insert_codes(conn, [
                {"id": "code_" + random_base62(12), "code_hash": self.box.hash_key(code),
                 "amount_micro": usd_to_micro(usd), "note": note} for code in codes])
        return codes

    async def redeem_code(self, user_id: int, code: str) -> int | None:
        """Credit a user with an unredeemed code; returns the new balance (None for a postpaid user)."""
        async with self._changing() as conn:
            amount = await repo.claim_code(conn, self.box.hash_key(code.strip().upper()), user_id)
            if amount is None:
                raise OperationError("no such code, or it was redeemed already")
            balance = await repo.change_balance(conn, user_id, amount)
            await repo.insert_ledger(conn, user_id, "redeem", amount, "redemption code")
        return balance

    async def codes(self) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            return await repo.all_codes(conn)
