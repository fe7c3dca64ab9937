"""One pipeline for both dialects: admit, route with failover, relay, settle, answer."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
import orjson
from starlette.responses import Response

from ccgate.billing.prices import cost_micro
from ccgate.gate.admission import Ticket
from ccgate.call import Call
from ccgate.errors import GatewayError
from ccgate.relay.client import UPSTREAM_ERRORS
from ccgate.relay.headers import upstream_headers
from ccgate.relay.sse import event_data, event_name
from ccgate.route.pool import Account
from ccgate.http.streaming import StreamRelay

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


def _retry_after(headers) -> float | None:
    try:
        return float(headers.get("retry-after", ""))
    except ValueError:
        return None


def _error_message(raw: bytes, status: int) -> str:
    try:
        return orjson.loads(raw)["error"]["message"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return f"upstream answered HTTP {status}"


class Pipeline:
    """Carries a parsed, authenticated request to an upstream and its answer back."""

    def __init__(self, gateway: "Gateway") -> None:
        self.gw = gateway
        self._background: set[asyncio.Task] = set()

    async def run(self, call: Call, path: str, body: bytes, client_headers: list[tuple[bytes, bytes]]) -> Response:
        ticket = await self.gw.gate.admit(call)
        streaming = False
        try:
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
            return Response(call.dialect.answer(attempt.body, message), 200,
                            headers=call.id_headers() | ticket.headers(), media_type="application/json")
        finally:
            if not streaming:
                ticket.release()

    async def passthrough(self, call: Call, path: str, body: bytes, client_headers) -> Response:
        """Forward a request that is neither limited nor billed, such as count_tokens."""
        attempt = await self._send(call, path, body, client_headers)
        return Response(attempt.body, attempt.response.status, headers=call.id_headers(),
                        media_type="application/json")

    # -- upstream, with failover before the first byte -------------------------------------------

    async def _send(self, call: Call, path: str, body: bytes, client_headers) -> Attempt:
        router, model = self.gw.router, call.model
        tried: set[int] = set()
        failures: list[tuple[int | None, str, float | None]] = []
        for _ in range(self.gw.settings.failover_attempts):
            account = router.pick(model.id, model.aliases, tried)
            if account is None:
                break
            tried.add(account.id)
            router.begin(account)
            try:
                response = await self.gw.upstream.post(
                    account.base_url, path, body, upstream_headers(client_headers, account.api_key))
                if response.status == 200 and call.stream:
                    router.succeeded(account)
                    return Attempt(response, account, None)
                raw = await response.read()
            except UPSTREAM_ERRORS as exc:
                router.end(account)
                message = f"upstream unreachable: {type(exc).__name__}"
                router.failed(account, "unreachable", message)
                failures.append((None, message, None))
                continue
            status = response.status
            if status == 200 or (status < 500 and status not in RETRYABLE_CAUSES):
                if status == 200:
                    router.succeeded(account)
                router.end(account)
                return Attempt(response, account, raw)
            router.end(account)
            message, retry_after = _error_message(raw, status), _retry_after(response.headers)
            cause = RETRYABLE_CAUSES.get(status, "server_error")
            router.failed(account, cause, message, retry_after)
            if cause in ("unauthorized", "forbidden"):
                await self.gw.disable_account(account, f"upstream answered {status}: {message}")
            failures.append((status, message, retry_after))
        raise self._exhausted(call, failures)

    def _exhausted(self, call: Call, failures: list[tuple[int | None, str, float | None]]) -> GatewayError:
        """502 with the last upstream message; 429 when every account was rate-limited; 503 when
        no account could be tried."""
        if not failures:
            wait = self.gw.router.seconds_until_recovery(call.model.id, call.model.aliases)
            return GatewayError(503, f"no healthy upstream account serves {call.model.id}; retry shortly",
                                retry_after=wait if wait is not None else 5)
        if all(status == 429 for status, _, _ in failures):
            waits = [after for _, _, after in failures if after]
            return GatewayError(429, "every upstream account is rate-limited; retry shortly",
                                retry_after=min(waits) if waits else 5)
        status, message, _ = failures[-1]
        return GatewayError(502, f"upstream error: {message}")

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
            "cost_micro": cost_micro(call.model, usage) if call.model else 0,
            "latency_ms": call.elapsed_ms(), "ttft_ms": call.ttft_ms,
            "account_id": call.account.id if call.account else None,
            "upstream_request_id": call.upstream_request_id, "error_type": call.error_type,
            "cache_hit": call.cache_hit, "created_ms": call.created_ms,
        }

    async def settle(self, call: Call, ticket: Ticket) -> None:
        """Commit the request's usage row and debit, then release its ticket (from the writer, right
        after the commit); raises if the database could not take it."""
        row = self.usage_row(call)
        row["cost_micro"] = ticket.billable(row["cost_micro"])
        try:
            await self.gw.writer.record(row, prepaid=call.key.prepaid,
                                        on_commit=ticket.on_commit(call.usage, row["cost_micro"]))
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
