"""One pipeline for both dialects: admit, route with failover, relay, settle, answer."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
import orjson
from starlette.responses import Response

from ccgate.billing.prices import Usage, cost_micro
from ccgate.cache.policy import hit_cost, storable, tokens_saved
from ccgate.call import Call
from ccgate.dialects.anthropic_stream import encode_events, message_events
from ccgate.errors import GatewayError
from ccgate.gate.admission import Ticket
from ccgate.http.streaming import StreamRelay
from ccgate.relay.client import UPSTREAM_ERRORS
from ccgate.relay.headers import upstream_headers
from ccgate.relay.sse import event_data, event_name
from ccgate.route.pool import Account
from ccgate.route.router import rate_limit_wait

if TYPE_CHECKING:
    from ccgate.app import Gateway

log = logging.getLogger("ccgate.pipeline")

RETRYABLE_CAUSES = {429: "rate_limited", 529: "overloaded", 401: "unauthorized", 403: "forbidden"}


@dataclass(slots=True)
class Attempt:
    """An upstream answer that ends the failover loop: a 200, or an error for the client to see."""

    response: aiohttp.ClientResponse
    account: Account
    body: bytes | None  # read already, unless it is a stream still to relay


def _error_message(raw: bytes, status: int) -> str:
    try:
        return orjson.loads(raw)["error"]["message"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return f"upstream answered HTTP {status}"


class Pipeline:
    """Carries a parsed, authenticated request to an upstream and its answer back."""

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway
        self._background: set[asyncio.Task] = set()
        self._leads: dict[str, asyncio.Future] = {}

    async def run(self, call: Call, path: str, body: bytes, client_headers: list[tuple[bytes, bytes]]) -> Response:
        if not self.gw.database_up:
            raise GatewayError(503, "the gateway cannot record usage right now; retry shortly", retry_after=5)
        ticket = await self.gw.gate.admit(call)
        streaming = False
        try:
            if call.cache_key is not None and (hit := await self._cached(call)) is not None:
                return await self._serve_hit(call, ticket, *hit)
            attempt = await self._send(call, path, body, client_headers)
            call.account = attempt.account
            response = attempt.response
            call.upstream_request_id = response.headers.get("request-id")
            if response.status != 200:
                return await self._upstream_error(call, attempt)
            if call.stream:
                streaming = True
                return StreamRelay(self, call, attempt, ticket)
            message = orjson.loads(attempt.body)
            call.usage.update(message.get("usage") or {})
            await self._settle_or_fail(call, ticket)
            await self.remember(call, message)
            return Response(call.dialect.answer(attempt.body, message), 200,
                            headers=call.id_headers() | ticket.headers(), media_type="application/json")
        finally:
            if not streaming:
                ticket.release()
                self.end_lead(call)
                await self.gw.state.caught_up()

    # -- the response cache ----------------------------------------------------------------------

    async def _cached(self, call: Call) -> tuple[bytes, float] | None:
        """A stored answer; with coalescing on, first wait for an identical request already upstream
        in this process or, through the store, in another."""
        cache, key = self.gw.cache, call.cache_key
        if self.gw.cache_policy.settings.coalesce:
            if (leader := self._leads.get(key)) is not None:
                await asyncio.shield(leader)
            elif await cache.lead(key):
                self._leads[key] = asyncio.get_running_loop().create_future()
                call.cache_lead = True
            else:
                return await cache.follow(key, self.gw.settings.first_byte_timeout)
        return await cache.get(key)

    def end_lead(self, call: Call) -> None:
        """Let requests waiting on this one ask the cache (again) now."""
        if call.cache_lead:
            call.cache_lead = False
            leader = self._leads.pop(call.cache_key, None)
            if leader is not None and not leader.done():
                leader.set_result(None)
            self.in_background(self.gw.cache.end_lead(call.cache_key))

    async def _serve_hit(self, call: Call, ticket: Ticket, raw: bytes, ttl_left: float) -> Response:
        """The stored answer in the caller's dialect (replayed as a stream if asked), billed at the hit
        price and recorded as a hit."""
        entry = orjson.loads(raw)
        message = entry["message"]
        call.cache_hit, call.cache_status = True, "HIT"
        call.usage.update(message.get("usage") or {})
        call.cost_micro = hit_cost(entry["cost_micro"], self.gw.cache_policy.settings.hit_price_bp)
        await self._settle_or_fail(call, ticket)
        headers = call.id_headers() | ticket.headers() | {
            "x-cache-ttl": str(int(ttl_left)), "x-tokens-saved": str(tokens_saved(message.get("usage") or {}))}
        dialect = call.dialect
        if call.stream:
            events = encode_events(message_events(message))
            body = dialect.stream_chunk(events, events.split(b"\n\n")[:-1]) + dialect.stream_end()
            return Response(body, 200, headers=headers, media_type="text/event-stream")
        return Response(dialect.answer(orjson.dumps(message), message), 200, headers=headers,
                        media_type="application/json")

    async def remember(self, call: Call, message: dict) -> None:
        """Store a whole, successful answer for identical requests to come (before they are let go)."""
        if call.cache_key is None or call.cache_hit or not storable(message):
            return
        entry = orjson.dumps({"message": message, "cost_micro": call.cost_micro})
        await self.gw.cache.put(call.cache_key, entry, self.gw.cache_policy.settings.ttl)

    async def passthrough(self, call: Call, path: str, body: bytes, client_headers) -> Response:
        """Forward a request that is neither limited nor billed, such as count_tokens."""
        attempt = await self._send(call, path, body, client_headers)
        return Response(attempt.body, attempt.response.status, headers=call.id_headers(),
                        media_type="application/json")

    # -- upstream, with failover before the first byte -------------------------------------------

    async def _send(self, call: Call, path: str, body: bytes, client_headers) -> Attempt:
        router, model = self.gw.router, call.model
        stuck = await self.gw.sticky.get(call.session) if call.session else None
        tried: set[int] = set()
        failures: list[tuple[int | None, str, float | None]] = []
        for _ in range(self.gw.settings.failover_attempts):
            choice = router.pick(model.id, model.aliases, tried, stuck)
            if choice is None:
                break
            account = choice.account
            tried.add(account.id)
            router.begin(account)
            try:
                response = await self.gw.upstream.post(
                    account.base_url, path, body, upstream_headers(client_headers, account.api_key))
                streaming = response.status == 200 and call.stream
                raw = None if streaming else await response.read()
            except UPSTREAM_ERRORS as exc:
                router.end(account)
                message = f"upstream unreachable: {type(exc).__name__}"
                router.failed(account, "unreachable", message)
                failures.append((None, message, None))
                continue
            status = response.status
            if status == 200 or (status < 500 and status not in RETRYABLE_CAUSES):
                if status == 200:
                    router.succeeded(account, response.headers)
                    call.session_moved = choice.moved
                    if call.session:
                        self.gw.sticky.put(call.session, account.id)
                if not streaming:
                    router.end(account)
                return Attempt(response, account, raw)
            router.end(account)
            message, cause = _error_message(raw, status), RETRYABLE_CAUSES.get(status, "server_error")
            retry_after = rate_limit_wait(response.headers) if status == 429 else None  # only 429 waits are told
            router.failed(account, cause, message, retry_after)
            if cause in ("unauthorized", "forbidden"):
                await self.gw.disable_account(account, f"upstream answered {status}: {message}")
            failures.append((status, message, retry_after))
        raise self._exhausted(call, failures)

    def _exhausted(self, call: Call, failures: list[tuple[int | None, str, float | None]]) -> GatewayError:
        """502 with the last upstream message; 429 when every account was rate-limited or is at its
        own limits; 503 when no account could be tried, with the soonest end of a cooldown."""
        if not failures:
            status, wait = self.gw.router.why_none(call.model.id, call.model.aliases)
            if status == 429:
                return GatewayError(429, "every upstream account for this model is at its limits; retry shortly",
                                    retry_after=wait)
            return GatewayError(503, f"no healthy upstream account serves {call.model.id}; retry shortly",
                                retry_after=wait if wait is not None else 5)
        if all(status == 429 for status, _, _ in failures):
            waits = [after for _, _, after in failures if after]
            return GatewayError(429, "every upstream account is rate-limited; retry shortly",
                                retry_after=min(waits) if waits else 5)
        return GatewayError(502, f"upstream error: {failures[-1][1]}")

    async def _upstream_error(self, call: Call, attempt: Attempt) -> Response:
        """A client error from upstream (400, 404, 413 ...): passed on as it is, recorded, not retried."""
        call.status = attempt.response.status
        call.error_type = "upstream_" + str(call.status)
        self.record_later(call)
        return Response(call.dialect.upstream_error(call.status, attempt.body), call.status,
                        headers=call.id_headers(), media_type="application/json")

    # -- streams ---------------------------------------------------------------------------------

    @staticmethod
    def observe(call: Call, blocks: list[bytes]) -> bool:
        """Capture usage and errors from whole events; True once the answer is over."""
        over = False
        for block in blocks:
            name = event_name(block)
            if name == b"message_start":
                call.usage.update(orjson.loads(event_data(block))["message"].get("usage") or {})
            elif name == b"message_delta":
                call.usage.update(orjson.loads(event_data(block)).get("usage") or {})
            elif name == b"message_stop":
                over = True
            elif name == b"error":
                call.error_type = (orjson.loads(event_data(block)).get("error") or {}).get("type", "error")
                over = True
        return over

    # -- settlement ------------------------------------------------------------------------------

    def usage_row(self, call: Call) -> dict:
        usage = call.usage
        return {
            "request_id": call.request_id, "key_id": call.key.id, "user_id": call.key.user_id,
            "model": call.model.id if call.model else "", "dialect": call.dialect.name,
            "status": call.status, "streamed": call.stream,
            "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
            "cache_read_tokens": usage.cache_read_tokens, "cache_write_5m_tokens": usage.cache_write_5m_tokens,
            "cache_write_1h_tokens": usage.cache_write_1h_tokens,
            "cost_micro": self._cost(call),
            "session_moved": call.session_moved,
            "latency_ms": call.elapsed_ms(), "ttft_ms": call.ttft_ms,
            "account_id": call.account.id if call.account else None,
            "upstream_request_id": call.upstream_request_id, "error_type": call.error_type,
            "cache_hit": call.cache_hit, "created_ms": call.created_ms,
        }

    @staticmethod
    def _cost(call: Call) -> int:
        """List price of what happened; a cache write the gateway caused by moving a session is
        priced as a read; a cache hit costs what was set on the call."""
        if call.cost_micro is not None:
            return call.cost_micro
        if call.model is None:
            return 0
        return cost_micro(call.model, call.usage.writes_as_reads() if call.session_moved else call.usage)

    async def settle(self, call: Call, ticket: Ticket) -> None:
        """Commit the request's usage row and debit, then release its ticket (from the writer, right
        after the commit); raises if the database could not take it."""
        row = self.usage_row(call)
        row["cost_micro"] = call.cost_micro = ticket.billable(row["cost_micro"])
        budget_use = Usage() if call.cache_hit else call.usage  # a hit spends no tokens of the budget
        try:
            await self.gw.writer.record(row, prepaid=call.key.prepaid,
                                        on_commit=ticket.on_commit(budget_use, row["cost_micro"]))
        except Exception:
            ticket.release()
            raise

    async def _settle_or_fail(self, call: Call, ticket: Ticket) -> None:
        try:
            await self.settle(call, ticket)
        except Exception as exc:
            raise GatewayError(503, "usage could not be recorded; the answer is withheld and not billed") from exc

    async def settle_quietly(self, call: Call, ticket: Ticket) -> bool:
        try:
            await self.settle(call, ticket)
            return True
        except Exception as exc:
            log.error("settling %s failed: %s", call.request_id, exc)
            return False

    def record_later(self, call: Call) -> None:
        """Record a request that was answered with an error (nothing to wait for)."""
        if call.key is not None:
            self.gw.writer.record_later(self.usage_row(call), prepaid=False)

    def in_background(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
