"""Alert operations over the database: webhook configuration, the delivery log, and the monitor
that checks the conditions periodically and delivers what is new.

`AlertOperations` is what the CLI, the admin API and the console call; `AlertMonitor.run` is the
background task a serving process starts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from ccgate.crypto import SecretBox
from ccgate.obs.alerts import (
    Alert,
    AlertSettings,
    Deduper,
    account_alerts,
    backlog_alert,
    budget_alerts,
    credit_alerts,
    deliver,
    render,
)
from ccgate.store import alerts_repo
from ccgate.store.alerts_repo import WEBHOOK_KINDS

log = logging.getLogger("ccgate.alerts")

STATUS_FRESH_MS = 15_000  # as ops.list_accounts: a process silent this long no longer counts


class AlertError(ValueError):
    """An alert operation the operator asked for cannot be done (shown to them as it is)."""


class AlertOperations:
    """Webhooks, the delivery log and the session report: one implementation for CLI, API and console."""

    def __init__(self, engine: AsyncEngine, box: SecretBox, settings: AlertSettings | None = None) -> None:
        self.engine = engine
        self.box = box
        self.settings = settings or AlertSettings.from_env()

    async def add_webhook(self, name: str, url: str, *, kind: str = "generic", secret: str | None = None) -> int:
        if kind not in WEBHOOK_KINDS:
            raise AlertError(f"a webhook is one of {', '.join(WEBHOOK_KINDS)}, not {kind}")
        if not url.startswith(("http://", "https://")):
            raise AlertError("a webhook URL starts with http:// or https://")
        try:
            async with self.engine.begin() as conn:
                return await alerts_repo.insert_webhook(conn, name, url, kind,
                                                        self.box.encrypt(secret) if secret else None)
        except IntegrityError:
            raise AlertError(f"a webhook named {name} exists already") from None

    async def webhooks(self) -> list[dict[str, Any]]:
        """Webhooks without their secrets (only whether one is set); URLs may hold tokens, so they are
        shown up to their path."""
        async with self.engine.connect() as conn:
            rows = await alerts_repo.webhooks(conn)
        return [{"id": row["id"], "name": row["name"], "url": _redact(row["url"]), "kind": row["kind"],
                 "signed": row["secret_enc"] is not None, "enabled": row["enabled"], "created_ms": row["created_ms"]}
                for row in rows]

    async def has_webhooks(self) -> bool:
        """Whether any webhook is enabled."""
        async with self.engine.connect() as conn:
            return bool(await alerts_repo.webhooks(conn, enabled_only=True))

    async def set_webhook_enabled(self, name: str, enabled: bool) -> None:
        async with self.engine.begin() as conn:
            if not await alerts_repo.set_webhook_enabled(conn, name, enabled):
                raise AlertError(f"no webhook {name}")

    async def remove_webhook(self, name: str) -> None:
        async with self.engine.begin() as conn:
            if not await alerts_repo.delete_webhook(conn, name):
                raise AlertError(f"no webhook {name}")

    async def deliveries(self, limit: int = 100) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            return await alerts_repo.deliveries(conn, limit)

    async def send(self, alerts: list[Alert]) -> int:
        """Deliver each alert to every enabled webhook, logging each delivery; the number delivered."""
        if not alerts:
            return 0
        async with self.engine.connect() as conn:
            hooks = await alerts_repo.webhooks(conn, enabled_only=True)
        if not hooks:
            return 0
        jobs = [(hook, alert) for hook in hooks for alert in alerts]
        async with aiohttp.ClientSession() as session:
            results = await asyncio.gather(*(self._deliver_one(session, hook, alert) for hook, alert in jobs))
        async with self.engine.begin() as conn:
            for (hook, alert), result in zip(jobs, results, strict=True):
                await alerts_repo.insert_delivery(conn, {
                    "webhook_id": hook["id"], "alert": alert.kind, "subject": alert.subject,
                    "message": alert.message, "outcome": result.outcome, "attempts": result.attempts,
                    "http_status": result.http_status, "error": result.error})
        return sum(result.outcome == "delivered" for result in results)

    async def _deliver_one(self, session: aiohttp.ClientSession, hook: dict[str, Any], alert: Alert) -> Any:
        secret = self.box.decrypt(hook["secret_enc"]) if hook["secret_enc"] else None
        body, headers = render(alert, hook["kind"], secret)
        result = await deliver(session, hook["url"], body, headers, attempts=self.settings.attempts,
                               backoff_seconds=self.settings.backoff_seconds)
        if result.outcome != "delivered":
            log.warning("alert %s to webhook %s failed after %d attempts: %s", alert.kind, hook["name"],
                        result.attempts, result.error)
        return result

    async def test(self) -> int:
        """Send a test alert to every enabled webhook now."""
        return await self.send([Alert("test", "gateway", "a test alert from ccgate", "warning")])

    async def usage_by_session(self, **filters: Any) -> list[dict[str, Any]]:
        """Requests, tokens and cost per Claude Code session, user, key and model."""
        async with self.engine.connect() as conn:
            return await alerts_repo.usage_by_session(conn, **filters)


def _redact(url: str) -> str:
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    return f"{scheme}://{host}/…" if "/" in rest.strip("/") else f"{scheme}://{host}"


class AlertMonitor:
    """Checks every condition each `check_seconds` and sends each new one once per `repeat_seconds`."""

    def __init__(self, operations: AlertOperations, *, ledger_depth: Callable[[], int] = lambda: 0,
                 default_window_seconds: int = 5 * 3600, deduper: Deduper | None = None) -> None:
        self.ops = operations
        self.settings = operations.settings
        self.ledger_depth = ledger_depth
        self.default_window_seconds = default_window_seconds
        self.deduper = deduper or Deduper(self.settings.repeat_seconds)
        self._cooling_since: dict[str, float] = {}

    async def conditions(self, now: float | None = None) -> list[Alert]:
        """Every alert condition that holds now (before deduplication)."""
        now = time.time() if now is None else now
        async with self.ops.engine.connect() as conn:
            accounts = await alerts_repo.accounts_with_status(conn, int(now * 1000) - STATUS_FRESH_MS)
            users = await alerts_repo.users_below(conn, self.settings.credit_below_micro)
            keys = await alerts_repo.key_budget_use(conn, self.default_window_seconds, int(now * 1000))
        return [*account_alerts(accounts, self._cooling_since, now, self.settings),
                *credit_alerts(users, self.settings), *budget_alerts(keys),
                *backlog_alert(self.ledger_depth(), self.settings)]

    async def check_once(self) -> list[Alert]:
        """Send what is new; returns the alerts sent. Without an enabled webhook nothing is checked, so
        nothing is marked as sent: a condition that holds when the first webhook is added is told."""
        if not await self.ops.has_webhooks():
            return []
        fresh = await self.deduper.fresh(await self.conditions())
        await self.ops.send(fresh)
        return fresh

    async def run(self) -> None:
        """The background task: check, send, sleep; errors are logged and the next round goes on."""
        while True:
            try:
                await self.check_once()
            except Exception as exc:  # the database may be down: that is itself reported elsewhere
                log.error("alert check failed: %s", exc)
            await asyncio.sleep(self.settings.check_seconds)
