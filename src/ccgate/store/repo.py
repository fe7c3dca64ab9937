"""Reads and writes over SQLAlchemy Core; every function takes an open connection."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict, Unpack

from sqlalchemy import CursorResult, Select, case, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ccgate.store.rows import UsageRow
from ccgate.store.schema import (
    account_status,
    accounts,
    api_keys,
    config_version,
    ledger,
    model_aliases,
    models,
    operator_settings,
    redemption_codes,
    usage,
    users,
    web_sessions,
)

Row = dict[str, Any]
"""A database row by column name, as SQLAlchemy's mappings give it."""


class UsageFilters(TypedDict, total=False):
    """Which usage rows a report covers (`_usage_filters`' arguments); absent or None matches any row."""

    user_id: int | None
    key_id: str | None
    model: str | None
    since_ms: int | None
    until_ms: int | None


def now_ms() -> int:
    return int(time.time() * 1000)


def _new_id(result: CursorResult[Any]) -> int:
    """The integer primary key of the row an INSERT just wrote."""
    key = result.inserted_primary_key
    if key is None:
        raise ValueError("the INSERT wrote no row")
    return int(key[0])


# -- configuration version: every admin change bumps it, every server checks it ----------------

BUMPED = "ccgate.config_bumped"  # marks, on the connection, a transaction that bumped the version


async def bump_version(conn: AsyncConnection) -> None:
    await conn.execute(update(config_version).values(version=config_version.c.version + 1))
    conn.info[BUMPED] = True


def version_bumped(conn: AsyncConnection) -> bool:
    return bool(conn.info.get(BUMPED, False))


def forget_bump(conn: AsyncConnection) -> None:
    conn.info.pop(BUMPED, None)


async def current_version(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(config_version.c.version))).scalar_one())


# -- users --------------------------------------------------------------------------------------

async def insert_user(conn: AsyncConnection, email: str, password_hash: str | None, is_admin: bool,
                      balance_micro: int | None) -> int:
    result = await conn.execute(insert(users).values(
        email=email, password_hash=password_hash, is_admin=is_admin, disabled=False,
        balance_micro=balance_micro, created_ms=now_ms(),
    ))
    return _new_id(result)


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


async def change_balance(conn: AsyncConnection, user_id: int, delta_micro: int, floor_micro: int = 0) -> int | None:
    """Add `delta_micro` to a user's balance (a postpaid user becomes prepaid); a deduction is refused
    if it would take the balance below `floor_micro`.  The new balance, or None when refused."""
    query = update(users).where(users.c.id == user_id)
    if delta_micro < 0:
        query = query.where(func.coalesce(users.c.balance_micro, 0) + delta_micro >= floor_micro)
    result = await conn.execute(query.values(balance_micro=func.coalesce(users.c.balance_micro, 0) + delta_micro)
                                .returning(users.c.balance_micro))
    return result.scalar_one_or_none()


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
        select(api_keys, users.c.disabled.label("user_disabled"), users.c.balance_micro, users.c.is_admin,
               users.c.overdraft_micro)
        .join(users, users.c.id == api_keys.c.user_id)
        .where(api_keys.c.revoked_ms.is_(None))
    )
    return [dict(row) for row in (await conn.execute(query)).mappings()]


async def revoked_key_hashes(conn: AsyncConnection) -> list[str]:
    """Hashes of revoked keys, so a client can be told its key was revoked rather than unknown."""
    query = select(api_keys.c.key_hash).where(api_keys.c.revoked_ms.is_not(None))
    return list((await conn.execute(query)).scalars())


# -- upstream accounts --------------------------------------------------------------------------

async def insert_account(conn: AsyncConnection, values: Row) -> int:
    result = await conn.execute(insert(accounts).values(created_ms=now_ms(), **values))
    return _new_id(result)


async def all_accounts(conn: AsyncConnection) -> list[Row]:
    return [dict(row) for row in (await conn.execute(select(accounts).order_by(accounts.c.id))).mappings()]


async def update_account(conn: AsyncConnection, name: str, values: Row) -> int:
    result = await conn.execute(update(accounts).where(accounts.c.name == name).values(**values))
    return result.rowcount


async def account_status_rows(conn: AsyncConnection, since_ms: int) -> list[Row]:
    """What each server process recorded about the accounts, from those alive since `since_ms`."""
    rows = await conn.execute(select(account_status).where(account_status.c.updated_ms >= since_ms))
    return [dict(row) for row in rows.mappings()]


async def replace_account_status(conn: AsyncConnection, process: str, rows: Sequence[Mapping[str, object]]) -> None:
    """This process's view of every account, replacing its previous one."""
    await conn.execute(delete(account_status).where(account_status.c.process == process))
    if rows:
        stamp = now_ms()
        await conn.execute(insert(account_status), [{**row, "process": process, "updated_ms": stamp} for row in rows])


# -- model catalog ------------------------------------------------------------------------------

async def enabled_models(conn: AsyncConnection) -> list[tuple[Row, list[str]]]:
    """Each enabled model with its aliases."""
    return await models_with_aliases(conn, enabled_only=True)


async def models_with_aliases(conn: AsyncConnection, *, enabled_only: bool = False) -> list[tuple[Row, list[str]]]:
    """Each model, newest first, with its aliases."""
    alias_rows = await conn.execute(select(model_aliases))
    aliases: dict[str, list[str]] = {}
    for alias, model_id in alias_rows:
        aliases.setdefault(model_id, []).append(alias)
    query = select(models).order_by(models.c.created_at.desc())
    if enabled_only:
        query = query.where(models.c.enabled.is_(True))
    rows = await conn.execute(query)
    return [(dict(row), sorted(aliases.get(row["id"], []))) for row in rows.mappings()]


async def update_model(conn: AsyncConnection, model_id: str, values: Row) -> int:
    result = await conn.execute(update(models).where(models.c.id == model_id).values(**values))
    return result.rowcount


# -- usage and ledger ---------------------------------------------------------------------------

async def usage_row(conn: AsyncConnection, request_id: str) -> UsageRow | None:
    row = (await conn.execute(select(usage).where(usage.c.request_id == request_id))).mappings().first()
    return UsageRow.from_mapping(dict(row)) if row else None


async def insert_ledger(conn: AsyncConnection, user_id: int, kind: str, amount_micro: int, note: str | None,
                        request_id: str | None = None) -> None:
    await conn.execute(insert(ledger).values(
        user_id=user_id, kind=kind, amount_micro=amount_micro, note=note, request_id=request_id,
        created_ms=now_ms(),
    ))


async def last_ledger_id(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.coalesce(func.max(ledger.c.id), 0)))).scalar_one())


async def credits_after(conn: AsyncConnection, entry_id: int) -> list[tuple[int, int, int]]:
    """(id, user id, amount) of the ledger's credit entries (everything but request debits) after `entry_id`."""
    rows = await conn.execute(select(ledger.c.id, ledger.c.user_id, ledger.c.amount_micro)
                              .where(ledger.c.id > entry_id, ledger.c.kind != "request").order_by(ledger.c.id))
    return [tuple(row) for row in rows]


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
    query = _usage_filters(query, user_id=user_id, key_id=key_id, model=model, since_ms=since_ms, until_ms=until_ms)
    return [dict(row) for row in (await conn.execute(query)).mappings()]


def _usage_filters(query: Select[Any], *, user_id: int | None = None, key_id: str | None = None,
                   model: str | None = None, since_ms: int | None = None, until_ms: int | None = None) -> Select[Any]:
    """`query` narrowed to the usage rows of a user, key, model and time span (None: any)."""
    for column, value in ((usage.c.user_id, user_id), (usage.c.key_id, key_id), (usage.c.model, model)):
        if value is not None:
            query = query.where(column == value)
    if since_ms is not None:
        query = query.where(usage.c.created_ms >= since_ms)
    if until_ms is not None:
        query = query.where(usage.c.created_ms < until_ms)
    return query


async def recent_usage(conn: AsyncConnection, *, limit: int, **filters: Unpack[UsageFilters]) -> list[Row]:
    """The newest usage rows matching `filters` (as `usage_summary` takes them), newest first."""
    query = _usage_filters(select(usage), **filters).order_by(usage.c.created_ms.desc()).limit(limit)
    return [dict(row) for row in (await conn.execute(query)).mappings()]


async def requests_per_minute(conn: AsyncConnection, since_ms: int) -> list[Row]:
    """Requests and errors (status 400 and up) per minute since `since_ms`, oldest first."""
    minute = (usage.c.created_ms // 60_000).label("minute")
    errors = func.sum(case((usage.c.status >= 400, 1), else_=0)).label("errors")
    query = (select(minute, func.count().label("requests"), errors)
             .where(usage.c.created_ms >= since_ms).group_by(minute).order_by(minute))
    return [dict(row) for row in (await conn.execute(query)).mappings()]


async def errors_by_type(conn: AsyncConnection, since_ms: int) -> list[Row]:
    """Failed requests since `since_ms` per status and error type, commonest first."""
    count = func.count().label("requests")
    query = (select(usage.c.status, usage.c.error_type, count)
             .where(usage.c.created_ms >= since_ms, usage.c.status >= 400)
             .group_by(usage.c.status, usage.c.error_type).order_by(count.desc()))
    return [dict(row) for row in (await conn.execute(query)).mappings()]


async def top_spenders(conn: AsyncConnection, since_ms: int, limit: int) -> list[Row]:
    """The users who spent most since `since_ms`: email, requests and cost."""
    cost = func.sum(usage.c.cost_micro).label("cost_micro")
    query = (select(users.c.email, func.count().label("requests"), cost)
             .join(users, users.c.id == usage.c.user_id).where(usage.c.created_ms >= since_ms)
             .group_by(users.c.email).order_by(cost.desc()).limit(limit))
    return [dict(row) for row in (await conn.execute(query)).mappings()]


async def spend_since(conn: AsyncConnection, since_ms: int) -> int:
    total = await conn.execute(select(func.coalesce(func.sum(usage.c.cost_micro), 0))
                               .where(usage.c.created_ms >= since_ms))
    return int(total.scalar_one())


# -- browser sessions -----------------------------------------------------------------------------

async def insert_session(conn: AsyncConnection, session_id: str, user_id: int, csrf_token: str,
                         expires_ms: int) -> None:
    await conn.execute(insert(web_sessions).values(
        id=session_id, user_id=user_id, csrf_token=csrf_token, created_ms=now_ms(), expires_ms=expires_ms))


async def live_session(conn: AsyncConnection, session_id: str) -> tuple[str, Row] | None:
    """An unexpired session's CSRF token and its user (without the password hash)."""
    columns = [column for column in users.c if column.name != "password_hash"]
    query = (select(web_sessions.c.csrf_token, *columns).join(users, users.c.id == web_sessions.c.user_id)
             .where(web_sessions.c.id == session_id, web_sessions.c.expires_ms > now_ms()))
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        return None
    user = dict(row)
    return user.pop("csrf_token"), user


async def delete_session(conn: AsyncConnection, session_id: str) -> None:
    await conn.execute(delete(web_sessions).where(web_sessions.c.id == session_id))


async def delete_sessions_of(conn: AsyncConnection, user_id: int) -> None:
    await conn.execute(delete(web_sessions).where(web_sessions.c.user_id == user_id))


async def delete_expired_sessions(conn: AsyncConnection) -> None:
    await conn.execute(delete(web_sessions).where(web_sessions.c.expires_ms <= now_ms()))


# -- operator settings ----------------------------------------------------------------------------

async def operator_settings_row(conn: AsyncConnection) -> Row:
    row = (await conn.execute(select(operator_settings).where(operator_settings.c.id == 1))).mappings().one()
    return {k: v for k, v in row.items() if k != "id"}


async def update_operator_settings(conn: AsyncConnection, values: Row) -> None:
    await conn.execute(update(operator_settings).where(operator_settings.c.id == 1).values(**values))

