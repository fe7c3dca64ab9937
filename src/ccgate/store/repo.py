"""Reads and writes over SQLAlchemy Core; every function takes an open connection."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ccgate.store.schema import (
    accounts,
    api_keys,
    config_version,
    ledger,
    model_aliases,
    models,
    redemption_codes,
    usage,
    users,
)

Row = dict[str, Any]


def now_ms() -> int:
    return int(time.time() * 1000)


# -- configuration version: every admin change bumps it, every server polls it ------------------

async def bump_version(conn: AsyncConnection) -> None:
    await conn.execute(update(config_version).values(version=config_version.c.version + 1))


async def current_version(conn: AsyncConnection) -> int:
    return (await conn.execute(select(config_version.c.version))).scalar_one()


# -- users --------------------------------------------------------------------------------------

async def insert_user(conn: AsyncConnection, email: str, password_hash: str | None, is_admin: bool,
                      balance_micro: int | None) -> int:
    result = await conn.execute(insert(users).values(
        email=email, password_hash=password_hash, is_admin=is_admin, disabled=False,
        balance_micro=balance_micro, created_ms=now_ms(),
    ))
    return result.inserted_primary_key[0]


async def user_by_email(conn: AsyncConnection, email: str) -> Row | None:
    row = (await conn.execute(select(users).where(users.c.email == email))).mappings().first()
    return dict(row) if row else None


async def all_users(conn: AsyncConnection) -> list[Row]:
    return [dict(row) for row in (await conn.execute(select(users).order_by(users.c.id))).mappings()]


async def update_user(conn: AsyncConnection, user_id: int, values: Row) -> None:
    await conn.execute(update(users).where(users.c.id == user_id).values(**values))


async def prepaid_balances(conn: AsyncConnection) -> dict[int, int]:
    rows = await conn.execute(select(users.c.id, users.c.balance_micro).where(users.c.balance_micro.is_not(None)))
    return {user_id: balance for user_id, balance in rows}


async def change_balance(conn: AsyncConnection, user_id: int, delta_micro: int) -> int | None:
    """Add `delta_micro` to a user's balance (a postpaid user becomes prepaid) unless it would go below
    zero; the new balance, or None when refused."""
    result = await conn.execute(
        update(users).where(users.c.id == user_id)
        .where(func.coalesce(users.c.balance_micro, 0) + delta_micro >= 0)
        .values(balance_micro=func.coalesce(users.c.balance_micro, 0) + delta_micro)
        .returning(users.c.balance_micro))
    return result.scalar_one_or_none()


async def user_by_id(conn: AsyncConnection, user_id: int) -> Row | None:
    row = (await conn.execute(select(users).where(users.c.id == user_id))).mappings().first()
    return dict(row) if row else None


# -- keys ---------------------------------------------------------------------------------------

async def insert_key(conn: AsyncConnection, values: Row) -> None:
    await conn.execute(insert(api_keys).values(created_ms=now_ms(), **values))


async def keys_of_user(conn: AsyncConnection, user_id: int) -> list[Row]:
    rows = await conn.execute(select(api_keys).where(api_keys.c.user_id == user_id).order_by(api_keys.c.created_ms))
    return [dict(row) for row in rows.mappings()]


async def key_by_id(conn: AsyncConnection, key_id: str) -> Row | None:
    row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).mappings().first()
    return dict(row) if row else None


async def update_key(conn: AsyncConnection, key_id: str, values: Row) -> int:
    result = await conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(**values))
    return result.rowcount


async def load_live_keys(conn: AsyncConnection) -> list[Row]:
    """Every unrevoked key with the facts of its user that admission needs."""
    query = (
        select(api_keys, users.c.disabled.label("user_disabled"), users.c.balance_micro, users.c.is_admin)
        .join(users, users.c.id == api_keys.c.user_id)
        .where(api_keys.c.revoked_ms.is_(None))
    )
    return [dict(row) for row in (await conn.execute(query)).mappings()]


# -- upstream accounts --------------------------------------------------------------------------

async def insert_account(conn: AsyncConnection, values: Row) -> int:
    result = await conn.execute(insert(accounts).values(created_ms=now_ms(), **values))
    return result.inserted_primary_key[0]


async def all_accounts(conn: AsyncConnection) -> list[Row]:
    return [dict(row) for row in (await conn.execute(select(accounts).order_by(accounts.c.id))).mappings()]


async def account_by_name(conn: AsyncConnection, name: str) -> Row | None:
    row = (await conn.execute(select(accounts).where(accounts.c.name == name))).mappings().first()
    return dict(row) if row else None


async def update_account(conn: AsyncConnection, name: str, values: Row) -> int:
    result = await conn.execute(update(accounts).where(accounts.c.name == name).values(**values))
    return result.rowcount


# -- model catalog ------------------------------------------------------------------------------

async def enabled_models(conn: AsyncConnection) -> list[tuple[Row, list[str]]]:
    """Each enabled model with its aliases."""
    alias_rows = await conn.execute(select(model_aliases))
    aliases: dict[str, list[str]] = {}
    for alias, model_id in alias_rows:
        aliases.setdefault(model_id, []).append(alias)
    rows = await conn.execute(select(models).where(models.c.enabled.is_(True)).order_by(models.c.created_at.desc()))
    return [(dict(row), sorted(aliases.get(row["id"], []))) for row in rows.mappings()]


# -- usage and ledger ---------------------------------------------------------------------------

async def usage_row(conn: AsyncConnection, request_id: str) -> Row | None:
    row = (await conn.execute(select(usage).where(usage.c.request_id == request_id))).mappings().first()
    return dict(row) if row else None


async def insert_ledger(conn: AsyncConnection, user_id: int, kind: str, amount_micro: int, note: str | None,
                        request_id: str | None = None) -> None:
    await conn.execute(insert(ledger).values(
        user_id=user_id, kind=kind, amount_micro=amount_micro, note=note, request_id=request_id,
        created_ms=now_ms(),
    ))


async def ledger_sum(conn: AsyncConnection, user_id: int) -> int:
    total = await conn.execute(select(func.coalesce(func.sum(ledger.c.amount_micro), 0))
                               .where(ledger.c.user_id == user_id))
    return int(total.scalar_one())


async def ledger_of(conn: AsyncConnection, user_id: int, limit: int = 200) -> list[Row]:
    rows = await conn.execute(select(ledger).where(ledger.c.user_id == user_id)
                              .order_by(ledger.c.id.desc()).limit(limit))
    return [dict(row) for row in rows.mappings()]


# -- redemption codes -----------------------------------------------------------------------------

async def insert_codes(conn: AsyncConnection, rows: list[Row]) -> None:
    await conn.execute(insert(redemption_codes), [{"created_ms": now_ms(), **row} for row in rows])


async def claim_code(conn: AsyncConnection, code_hash: str, user_id: int) -> int | None:
    """Mark an unredeemed code as redeemed by `user_id`; its amount, or None if there is no such code."""
    result = await conn.execute(
        update(redemption_codes)
        .where(redemption_codes.c.code_hash == code_hash, redemption_codes.c.redeemed_by.is_(None))
        .values(redeemed_by=user_id, redeemed_ms=now_ms())
        .returning(redemption_codes.c.amount_micro))
    return result.scalar_one_or_none()


async def all_codes(conn: AsyncConnection) -> list[Row]:
    rows = await conn.execute(select(redemption_codes).order_by(redemption_codes.c.created_ms.desc()))
    return [{k: v for k, v in row.items() if k != "code_hash"} for row in rows.mappings()]


# -- usage reports --------------------------------------------------------------------------------

DAY_MS = 86_400_000


async def usage_summary(conn: AsyncConnection, *, user_id: int | None = None, key_id: str | None = None,
                        model: str | None = None, since_ms: int | None = None,
                        until_ms: int | None = None) -> list[Row]:
    """Requests, tokens and cost per day, model and key, filtered as asked."""
    day = (usage.c.created_ms // DAY_MS).label("day")
    query = select(
        day, usage.c.model, usage.c.key_id, usage.c.user_id,
        func.count().label("requests"),
        func.sum(usage.c.input_tokens).label("input_tokens"),
        func.sum(usage.c.output_tokens).label("output_tokens"),
        func.sum(usage.c.cache_read_tokens).label("cache_read_tokens"),
        func.sum(usage.c.cache_write_5m_tokens + usage.c.cache_write_1h_tokens).label("cache_write_tokens"),
        func.sum(usage.c.cost_micro).label("cost_micro"),
    ).group_by(day, usage.c.model, usage.c.key_id, usage.c.user_id).order_by(day)
    for column, value in ((usage.c.user_id, user_id), (usage.c.key_id, key_id), (usage.c.model, model)):
        if value is not None:
            query = query.where(column == value)
    if since_ms is not None:
        query = query.where(usage.c.created_ms >= since_ms)
    if until_ms is not None:
        query = query.where(usage.c.created_ms < until_ms)
    return [dict(row) for row in (await conn.execute(query)).mappings()]
