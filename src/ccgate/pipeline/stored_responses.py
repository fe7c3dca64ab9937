"""Stored Responses-API answers as the handlers use them: begun before the request goes upstream,
finished (or failed) in the background once the answer is complete, read back walled per user."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from ccgate.dialects.responses import ResponsesDialect
from ccgate.errors import GatewayError
from ccgate.store import responses_repo
from ccgate.store.responses_repo import StoredResponse

log = logging.getLogger("ccgate.responses")
Json = dict[str, Any]
UNFINISHED_WAIT_S = 5.0  # how long a read waits for an answer still being written


class StoredResponses:
    """One process's writer and reader of stored responses."""

    def __init__(self, engine: AsyncEngine, retention_s: int) -> None:
        self.engine = engine
        self.retention_s = retention_s
        self._writes: dict[str, asyncio.Task[None]] = {}  # response id -> its write under way

    async def begin(self, dialect: ResponsesDialect, *, user_id: int, key_id: str, input_items: list[Json],
                    response: Json, turns: list[Json]) -> None:
        """Store the response as in progress, and have the dialect store its outcome when it has one."""
        response_id = dialect.frame["id"]
        try:
            async with self.engine.begin() as conn:
                await responses_repo.begin_response(
                    conn, response_id=response_id, user_id=user_id, key_id=key_id, input_items=input_items,
                    retention_s=self.retention_s, response=response)
        except SQLAlchemyError as exc:
            raise GatewayError(503, "the response could not be stored; retry shortly, or send store: false",
                               retry_after=5) from exc

        async def finish() -> None:
            assert dialect.finished is not None
            message, answer = dialect.finished
            history = list(turns)
            if message.get("content"):
                history.append({"role": "assistant", "content": message["content"]})
            async with self.engine.begin() as conn:
                await responses_repo.finish_response(conn, response_id, answer, history)

        async def fail(answer: Json) -> None:
            async with self.engine.begin() as conn:
                await responses_repo.fail_response(conn, response_id, answer)

        dialect.on_finish = lambda: self._write(response_id, finish())
        dialect.on_fail = lambda answer: self._write(response_id, fail(answer))

    async def written(self, response_id: str) -> None:
        """Wait for this response's write, if one is under way (so a reply is stored before it is sent)."""
        if (task := self._writes.get(response_id)) is not None:
            await asyncio.shield(task)

    async def get(self, response_id: str, user_id: int, *, wait: bool = False) -> StoredResponse:
        """This user's stored response, or 404; with `wait`, give an answer still being written a moment."""
        deadline = time.monotonic() + (UNFINISHED_WAIT_S if wait else 0)
        while True:
            async with self.engine.connect() as conn:
                stored = await responses_repo.get_response(conn, response_id, user_id)
            if stored is None:
                raise GatewayError(404, f"No response found with id '{response_id}'.")
            if stored.status != "in_progress" or time.monotonic() >= deadline:
                return stored
            await asyncio.sleep(0.05)

    async def delete(self, response_id: str, user_id: int) -> None:
        async with self.engine.begin() as conn:
            if not await responses_repo.delete_response(conn, response_id, user_id):
                raise GatewayError(404, f"No response found with id '{response_id}'.")

    def _write(self, response_id: str, write: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(write)
        self._writes[response_id] = task
        task.add_done_callback(lambda done: self._written(response_id, done))

    def _written(self, response_id: str, task: asyncio.Task[None]) -> None:
        if self._writes.get(response_id) is task:
            del self._writes[response_id]
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("storing a response failed: %s", error)
