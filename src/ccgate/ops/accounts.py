"""Upstream accounts: adding, health as the live servers report it, changes."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError

from ccgate.ops.common import DEFAULT_BASE_URL, OperationError, OperationsBase
from ccgate.route.headroom import merge_reports
from ccgate.store import repo

STATUS_FRESH_MS = 15_000  # a process silent this long is gone; its report no longer counts


def with_health(account: dict[str, Any], reports: list[dict[str, Any]]) -> dict[str, Any]:
    """An account without its credentials, with its health summed over the server processes' `reports`:
    the longest cooldown and its cause, the newest error, requests in flight and in the last minute, and
    its headroom (route.headroom: the newest rate-limit windows, and why it cannot be routed to now)."""
    mine = [report for report in reports if report["account_id"] == account["id"]]
    cooling = max(mine, key=lambda r: r["cooldown_until_ms"] or 0, default=None)
    erring = max(mine, key=lambda r: r["last_error_ms"] or 0, default=None)
    return {k: v for k, v in account.items() if k != "api_key_enc"} | {
        "cooldown_until_ms": cooling["cooldown_until_ms"] if cooling else None,
        "cause": cooling["cause"] if cooling and cooling["cooldown_until_ms"] else None,
        "last_error": erring["last_error"] if erring else None,
        "last_error_ms": erring["last_error_ms"] if erring else None,
        "in_flight": sum(r["in_flight"] for r in mine),
        "requests_last_minute": sum(r["requests_last_minute"] for r in mine),
    } | merge_reports(mine)


class AccountOperations(OperationsBase):
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
            async with self._changing() as conn:
                account_id = await repo.insert_account(conn, {
                    "name": name.strip(), "api_key_enc": self.box.encrypt(api_key.strip()),
                    "base_url": base_url.rstrip("/"), "models": ",".join(models) if models else None,
                    "priority": priority, "weight": weight, "rpm": rpm or None,
                    "concurrency": concurrency or None, "enabled": True,
                })
        except IntegrityError:
            raise OperationError(f"an account named {name} exists already") from None
        return account_id

    async def list_accounts(self) -> list[dict[str, Any]]:
        """Accounts without their credentials, with their health over the live server processes."""
        async with self.engine.connect() as conn:
            rows = await repo.all_accounts(conn)
            reports = await repo.account_status_rows(conn, repo.now_ms() - STATUS_FRESH_MS)
        return [with_health(row, reports) for row in rows]

    async def update_account(self, name: str, **values: Any) -> None:
        if "api_key" in values:
            values["api_key_enc"] = self.box.encrypt(values.pop("api_key"))
        async with self._changing() as conn:
            if not await repo.update_account(conn, name, values):
                raise OperationError(f"no account {name}")

    async def set_account_enabled(self, name: str, enabled: bool, reason: str | None = None) -> None:
        await self.update_account(name, enabled=enabled, disabled_reason=None if enabled else reason)
