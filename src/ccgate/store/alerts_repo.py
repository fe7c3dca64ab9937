"""Reads and writes for alerts and observability reports; every function takes an open connection."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ccgate.store.schema import (
    account_status,
    accounts,
    alert_deliveries,
    alert_webhooks,
    api_keys,
    usage,
    users,
)

WEBHOOK_KINDS = ("generic", "slack")  # how a webhook's payload is shaped: signed JSON, or Slack's

Row = dict[str, Any]


def now_ms() -> int:
    return int(time.time() * 1000)


# -- webhooks and their delivery log -----------------------------------------------------------

async def insert_webhook(conn: AsyncConnection, name: str, url: str, kind: str, secret_enc: str | None) -> int:
    result = await conn.execute(insert(alert_webhooks).values(
        name=name, url=url, kind=kind, secret_enc=secret_enc, enabled=True, created_ms=now_ms()))
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


async def webhooks(conn: AsyncConnection, *, enabled_only: bool = False) -> list[Row]:
    query = select(alert_webhooks).order_by(alert_webhooks.c.id)
    if enabled_only:
        query = query.where(alert_webhooks.c.enabled.is_(True))
    return [dict(row) for row in (await conn.execute(query)).mappings()]


async def set_webhook_enabled(conn: AsyncConnection, name: str, enabled: bool) -> bool:
    result = await conn.execute(update(alert_webhooks).where(alert_webhooks.c.name == name).values(enabled=enabled))
    return result.rowcount > 0


async def delete_webhook(conn: AsyncConnection, name: str) -> bool:
    ids = select(alert_webhooks.c.id).where(alert_webhooks.c.name == name).scalar_subquery()
    await conn.execute(delete(alert_deliveries).where(alert_deliveries.c.webhook_id == ids))
    result = await conn.execute(delete(alert_webhooks).where(alert_webhooks.c.name == name))
    return result.rowcount > 0


async def insert_delivery(conn: AsyncConnection, row: Row) -> None:
    await conn.execute(insert(alert_deliveries).values(**row, created_ms=now_ms()))


async def deliveries(conn: AsyncConnection, limit: int = 100) -> list[Row]:
    query = (select(alert_deliveries, alert_webhooks.c.name.label("webhook"))
             .join(alert_webhooks, alert_webhooks.c.id == alert_deliveries.c.webhook_id)
             .order_by(alert_deliveries.c.id.desc()).limit(limit))
    return [dict(row) for row in (await conn.execute(query)).mappings()]


# -- what the alert conditions read -------------------------------------------------------------

async def accounts_with_status(conn: AsyncConnection, since_ms: int) -> list[Row]:
    """Each account (no credential) with the live processes' reports: the latest cooldown end and why
    it cannot be routed to, if a process says so."""
    reports = (select(account_status.c.account_id,
                      func.max(account_status.c.cooldown_until_ms).label("cooldown_until_ms"),
                      func.max(account_status.c.unroutable).label("unroutable"))
               .where(account_status.c.updated_ms >= since_ms).group_by(account_status.c.account_id).subquery())
    query = (select(accounts.c.id, accounts.c.name, accounts.c.enabled, accounts.c.disabled_reason,
                    reports.c.cooldown_until_ms, reports.c.unroutable)
             .outerjoin(reports, reports.c.account_id == accounts.c.id).order_by(accounts.c.id))
    return [dict(row) for row in (await conn.execute(query)).mappings()]


async def users_below(conn: AsyncConnection, threshold_micro: int) -> list[Row]:
    """Enabled prepaid users whose credit is below the threshold."""
    query = select(users.c.id, users.c.email, users.c.balance_micro).where(
        users.c.balance_micro.is_not(None), users.c.balance_micro < threshold_micro, users.c.disabled.is_(False))
    return [dict(row) for row in (await conn.execute(query)).mappings()]


async def key_budget_use(conn: AsyncConnection, default_window_seconds: int, now: int | None = None) -> list[Row]:
    """Live keys with a token budget and the tokens they used in their window, counted as admission
    counts them (input, output and cache writes; response-cache hits spend nothing)."""
    now = now_ms() if now is None else now
    keys = (await conn.execute(select(api_keys.c.id, api_keys.c.user_id, api_keys.c.token_budget,
                                      api_keys.c.window_seconds).where(
        api_keys.c.token_budget > 0, api_keys.c.revoked_ms.is_(None)))).mappings().all()
    rows = []
    spent = (usage.c.input_tokens + usage.c.output_tokens + usage.c.cache_write_5m_tokens
             + usage.c.cache_write_1h_tokens)
    for key in keys:
        window = key["window_seconds"] or default_window_seconds
        used = (await conn.execute(select(func.coalesce(func.sum(spent), 0)).where(and_(
            usage.c.key_id == key["id"], usage.c.created_ms >= now - window * 1000,
            usage.c.cache_hit.is_(False))))).scalar_one()
        rows.append({**key, "window_seconds": window, "used": int(used)})
    return rows


# -- cost attribution ----------------------------------------------------------------------------

async def usage_by_session(conn: AsyncConnection, *, user_id: int | None = None, key_id: str | None = None,
                           since_ms: int | None = None, until_ms: int | None = None,
                           limit: int = 200) -> list[Row]:
    """Requests, tokens and cost per Claude Code session (x-claude-code-session-id), user, key and
    model, most expensive first; requests without a session are grouped under session None."""
    query = (select(usage.c.session_id, usage.c.user_id, usage.c.key_id, usage.c.model,
                    func.count().label("requests"),
                    func.sum(usage.c.input_tokens).label("input_tokens"),
                    func.sum(usage.c.output_tokens).label("output_tokens"),
                    func.sum(usage.c.cache_read_tokens).label("cache_read_tokens"),
                    func.sum(usage.c.cache_write_5m_tokens + usage.c.cache_write_1h_tokens).label(
                        "cache_write_tokens"),
                    func.sum(usage.c.cost_micro).label("cost_micro"),
                    func.min(usage.c.created_ms).label("first_ms"), func.max(usage.c.created_ms).label("last_ms"))
             .group_by(usage.c.session_id, usage.c.user_id, usage.c.key_id, usage.c.model)
             .order_by(func.sum(usage.c.cost_micro).desc()).limit(limit))
    if user_id is not None:
        query = query.where(usage.c.user_id == user_id)
    if key_id is not None:
        query = query.where(usage.c.key_id == key_id)
    if since_ms is not None:
        query = query.where(usage.c.created_ms >= since_ms)
    if until_ms is not None:
        query = query.where(usage.c.created_ms < until_ms)
    return [{name: (int(value) if name.endswith(("tokens", "micro")) else value) for name, value in row.items()}
            for row in (await conn.execute(query)).mappings()]
