"""The response cache as the pipeline uses it: ask, serve a hit, remember an answer, coalesce."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from typing import Any

import orjson

from ccgate.cache.policy import CachePolicy, hit_cost, storable, tokens_saved
from ccgate.cache.store import ResponseStore
from ccgate.dialects.anthropic_stream import encode_events, message_events
from ccgate.pipeline.context import Call


class ResponseCache:
    """One process's view of the shared response store, with its own table of coalescing leaders."""

    def __init__(self, store: ResponseStore, policy: CachePolicy, *, follow_timeout: float) -> None:
        self.store = store
        self.policy = policy
        self.follow_timeout = follow_timeout
        self._leads: dict[str, asyncio.Future[None]] = {}
        self._background: set[asyncio.Task[None]] = set()

    def ask(self, call: Call, request: dict[str, Any], headers: Mapping[str, str]) -> None:
        """Set the call's cache key (None: it bypasses the cache) and its X-Cache status."""
        assert call.key is not None and call.model is not None
        call.cache_key = self.policy.key_for(
            key_id=call.key.id, user_id=call.key.user_id, key_cache_enabled=call.key.cache_enabled,
            model_id=call.model.id, request=request, headers=headers)
        call.cache_status = "MISS" if call.cache_key is not None else "BYPASS"

    async def lookup(self, key: str, call: Call) -> tuple[bytes, float] | None:
        """A stored answer; with coalescing on, first wait for an identical request already upstream
        in this process or, through the store, in another."""
        if self.policy.settings.coalesce:
            if (leader := self._leads.get(key)) is not None:
                await asyncio.shield(leader)
            elif await self.store.lead(key):
                self._leads[key] = asyncio.get_running_loop().create_future()
                call.cache_lead = True
            else:
                return await self.store.follow(key, self.follow_timeout)
        return await self.store.get(key)

    def end_lead(self, call: Call) -> None:
        """Let requests waiting on this one ask the cache (again) now."""
        if call.cache_lead and call.cache_key is not None:
            call.cache_lead = False
            leader = self._leads.pop(call.cache_key, None)
            if leader is not None and not leader.done():
                leader.set_result(None)
            self._in_background(self.store.end_lead(call.cache_key))

    def take_hit(self, call: Call, raw: bytes) -> dict[str, Any]:
        """Mark the call as served from the cache at the hit price; the stored message."""
        entry = orjson.loads(raw)
        message: dict[str, Any] = entry["message"]
        call.cache_hit, call.cache_status = True, "HIT"
        call.usage.update(message.get("usage") or {})
        call.cost_micro = hit_cost(entry["cost_micro"], self.policy.settings.hit_price_bp)
        return message

    async def remember(self, call: Call, message: dict[str, Any]) -> None:
        """Store a whole, successful answer for identical requests to come (before they are let go)."""
        if call.cache_key is None or call.cache_hit or not storable(message):
            return
        entry = orjson.dumps({"message": message, "cost_micro": call.cost_micro})
        await self.store.put(call.cache_key, entry, self.policy.settings.ttl)

    def _in_background(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def hit_headers(message: dict[str, Any], ttl_left: float) -> dict[str, str]:
    return {"x-cache-ttl": str(int(ttl_left)), "x-tokens-saved": str(tokens_saved(message.get("usage") or {}))}


def replay(call: Call, message: dict[str, Any]) -> bytes:
    """A stored message in the caller's dialect: as a stream if the request streams."""
    dialect = call.dialect
    if call.stream:
        events = encode_events(message_events(message))
        return dialect.stream_chunk(events, events.split(b"\n\n")[:-1]) + dialect.stream_end()
    return dialect.answer(orjson.dumps(message), message)
