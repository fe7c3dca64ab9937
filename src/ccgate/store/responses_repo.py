"""Stored Responses-API answers: one row per response, walled per user, gone after the retention period."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ccgate.store.schema import responses

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A stored response as its owner sees it."""

    id: str
    status: str
    input_items: list[Json]
    turns: list[Json] | None  # None until the answer is complete
    response: Json | None


def _now_ms() -> int:
    return int(time.time() * 1000)


async def begin_response(conn: AsyncConnection, *, response_id: str, user_id: int, key_id: str,
                         input_items: list[Json], retention_s: int, response: Json) -> None:
    """Store a response that is being answered, and drop every expired one (an index range: cheap)."""
    await delete_expired(conn)
    now = _now_ms()
    await conn.execute(insert(responses).values(
        id=response_id, user_id=user_id, key_id=key_id, status="in_progress", created_ms=now,
        expires_ms=now + retention_s * 1000, input_items=orjson.dumps(input_items).decode(),
        response=orjson.dumps(response).decode()))


async def finish_response(conn: AsyncConnection, response_id: str, response: Json, turns: list[Json]) -> None:
    """Store the finished Response and the conversation that continues from it."""
    await conn.execute(update(responses).where(responses.c.id == response_id).values(
        status=response["status"], response=orjson.dumps(response).decode(), turns=orjson.dumps(turns).decode()))


async def fail_response(conn: AsyncConnection, response_id: str, response: Json) -> None:
    """Store the failed Response; there is no conversation to continue from it."""
    await conn.execute(update(responses).where(responses.c.id == response_id).values(
        status="failed", response=orjson.dumps(response).decode()))


async def get_response(conn: AsyncConnection, response_id: str, user_id: int) -> StoredResponse | None:
    """The response if it is this user's and not expired; None otherwise (another user's looks absent)."""
    row = (await conn.execute(select(responses).where(and_(
        responses.c.id == response_id, responses.c.user_id == user_id,
        responses.c.expires_ms > _now_ms())))).mappings().first()
    if row is None:
        return None
    return StoredResponse(
        id=row["id"], status=row["status"], input_items=orjson.loads(row["input_items"]),
        turns=orjson.loads(row["turns"]) if row["turns"] else None,
        response=orjson.loads(row["response"]) if row["response"] else None)


async def delete_response(conn: AsyncConnection, response_id: str, user_id: int) -> bool:
    """Delete this user's response; False when there was none."""
    result = await conn.execute(delete(responses).where(and_(
        responses.c.id == response_id, responses.c.user_id == user_id)))
    return bool(result.rowcount)


async def delete_expired(conn: AsyncConnection) -> int:
    """Delete every expired response; the number deleted."""
    result = await conn.execute(delete(responses).where(responses.c.expires_ms <= _now_ms()))
    return int(result.rowcount)
