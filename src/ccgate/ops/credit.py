"""Prepaid credit: grants, corrections, the ledger."""

from __future__ import annotations

from typing import Any

from ccgate.ops.common import OperationError, usd_to_micro
from ccgate.ops.users import UserOperations
from ccgate.state.base import StateUnavailable
from ccgate.store import repo


class CreditOperations(UserOperations):
    async def grant_credit(self, email: str, usd: float, note: str | None = None) -> int:
        """Add (or, negative, take back) credit; returns the new balance in micro-dollars."""
        user = await self.user(email)
        amount = usd_to_micro(usd)
        if amount == 0:
            raise OperationError("a grant of $0 changes nothing")
        floor, held = 0, 0
        if amount < 0:
            overdraft = user.get("overdraft_micro")
            overdraft = self.settings.default_overdraft_micro if overdraft is None else overdraft
            held = await self._held_in_flight(user["id"])
            floor = held - overdraft
        async with self._changing() as conn:
            balance = await repo.change_balance(conn, user["id"], amount, floor)
            if balance is None:
                raise OperationError(
                    f"a correction of ${usd} would take {email} below their floor: the balance may not go under "
                    f"${floor / 1_000_000:.6f} (an overdraft of ${(held - floor) / 1_000_000:.6f}, with "
                    f"${held / 1_000_000:.6f} held by requests in flight); correct by less, or retry once they end")
            await repo.insert_ledger(conn, user["id"], "grant" if amount > 0 else "correction", amount, note)
        return balance

    async def _held_in_flight(self, user_id: int) -> int:
        """What the user's requests in flight hold, as far as this process can know: with Redis, what every
        server holds there; without it (or with Redis down) nothing, as no server's memory is visible here."""
        if not self.settings.redis_url:
            return 0
        from ccgate.state.redis import credit_held  # Redis's client is loaded only where there is one

        try:
            return await credit_held(self.settings.redis_url, self.settings.redis_prefix, user_id)
        except StateUnavailable:
            return 0

    async def ledger(self, email: str) -> list[dict[str, Any]]:
        user = await self.user(email)
        async with self.engine.connect() as conn:
            return await repo.ledger_of(conn, user["id"])
