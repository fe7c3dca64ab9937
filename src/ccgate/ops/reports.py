"""Reports for the console, the dashboard and the admin API: usage, spend, traffic."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ccgate.ops.common import OperationsBase
from ccgate.store import repo


@dataclass(frozen=True)
class Overview:
    """Traffic, errors and spend of the last hour and day, for the operator console."""

    per_minute: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    spend_today_micro: int
    spend_24h_micro: int
    top_users: list[dict[str, Any]]


class ReportOperations(OperationsBase):
    async def usage_summary(self, **filters: Any) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            return await repo.usage_summary(conn, **filters)

    async def recent_requests(self, *, limit: int, **filters: Any) -> list[dict[str, Any]]:
        """The newest usage rows matching `filters` (user_id, key_id, model, since_ms, until_ms)."""
        async with self.engine.connect() as conn:
            return await repo.recent_usage(conn, limit=limit, **filters)

    async def overview(self) -> Overview:
        now = repo.now_ms()
        hour_ago, day_ago = now - 3_600_000, now - repo.DAY_MS
        async with self.engine.connect() as conn:
            return Overview(
                per_minute=await repo.requests_per_minute(conn, hour_ago),
                errors=await repo.errors_by_type(conn, hour_ago),
                spend_today_micro=await repo.spend_since(conn, now - now % repo.DAY_MS),
                spend_24h_micro=await repo.spend_since(conn, day_ago),
                top_users=await repo.top_spenders(conn, day_ago, 10),
            )
