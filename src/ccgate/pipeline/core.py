"""One pipeline for every dialect: admit, answer from the cache or forward with failover, settle, answer."""

from __future__ import annotations

import logging
from collections.abc import Callable

import orjson
from starlette.responses import Response
from starlette.types import ASGIApp

from ccgate.billing.prices import Usage
from ccgate.billing.refusals import RefusalSampler
from ccgate.billing.settle import Settler
from ccgate.errors import GatewayError
from ccgate.gate.admission import Gate, Ticket
from ccgate.obs.observer import Observer
from ccgate.pipeline.caching import ResponseCache, hit_headers, replay
from ccgate.pipeline.context import Call
from ccgate.pipeline.observing import record_of, refusal_of
from ccgate.pipeline.streaming import CallStream
from ccgate.relay.forward import Attempt, Forwarder, Target
from ccgate.relay.stream import StreamRelay
from ccgate.state.base import AdmissionState

log = logging.getLogger("ccgate.pipeline")

JSON = "application/json"


class Pipeline:
    """Carries a parsed, authenticated request to an upstream and its answer back."""

    def __init__(self, *, gate: Gate, forwarder: Forwarder, settler: Settler, state: AdmissionState,
                 cache: ResponseCache, database_up: Callable[[], bool], observer: Observer | None = None) -> None:
        self.gate = gate
        self.forwarder = forwarder
        self.settler = settler
        self.state = state
        self.cache = cache
        self.database_up = database_up
        self.observer = observer
        self.tracing = forwarder.tracing
        self.refusals = RefusalSampler()

    async def run(self, call: Call, path: str, body: bytes, client_headers: list[tuple[bytes, bytes]]) -> ASGIApp:
        """The response to an admitted request, or a GatewayError."""
        assert call.key is not None and call.model is not None
        if self.tracing.enabled:
            call.trail.span = self.tracing.start_request(
                call.route, call.model.id, max_tokens=call.max_tokens, carrier=traceparent_of(client_headers))
        try:
            if not self.database_up():
                raise GatewayError(503, "the gateway cannot record usage right now; retry shortly", retry_after=5)
            ticket = await self.tracing.step(call.trail.span, "admission", self.gate.admit(
                call.key, call.model, body_size=call.body_size, max_tokens=call.max_tokens, flags=call.flags,
                wants_1h_cache=call.wants_1h_cache))
            if log.isEnabledFor(logging.DEBUG):  # the admission figures, for comparing holds with debits
                log.debug("admitted %s: body %d bytes, max_tokens %d, hold %s micro-USD, reserve %d tokens",
                          call.request_id, call.body_size, call.max_tokens, ticket.limits.hold_micro,
                          ticket.limits.reserve_tokens)
        except GatewayError as refusal:
            call.refusal = refusal_of(refusal)
            raise
        streaming = False
        try:
            if call.cache_key is not None and (hit := await self.cache.lookup(call.cache_key, call)) is not None:
                return await self._serve_hit(call, ticket, *hit)
            attempt = await self.forwarder.send(self._target(call), path, body, client_headers, call.trail)
            call.account, call.session_moved = attempt.account, attempt.moved
            response = attempt.response
            call.upstream_request_id = response.headers.get("request-id")
            if response.status != 200:
                return self._upstream_error(call, attempt)
            if call.stream:
                streaming = True
                return StreamRelay(response, CallStream(self, call, attempt, ticket),
                                   call.id_headers() | ticket.headers(),
                                   idle_timeout=self.forwarder.upstream.idle_timeout, request_id=call.request_id)
            assert attempt.body is not None
            message = orjson.loads(attempt.body)
            call.usage.update(message.get("usage") or {})
            await self.settle(call, ticket)
            if call.cache_key is not None:
                await self.cache.remember(call, message)
            return Response(call.dialect.answer(attempt.body, message), 200,
                            headers=call.id_headers() | ticket.headers(), media_type=JSON)
        finally:
            if not streaming:
                ticket.release()
                if call.cache_lead:
                    self.cache.end_lead(call)
                await self.state.caught_up()

    async def passthrough(self, call: Call, path: str, body: bytes,
                          client_headers: list[tuple[bytes, bytes]]) -> Response:
        """Forward a request that is not billed, such as count_tokens, under the key's count_tokens limit."""
        assert call.key is not None
        ticket = await self.gate.admit_count(call.key)
        try:
            attempt = await self.forwarder.send(self._target(call), path, body, client_headers, call.trail)
        finally:
            ticket.release()
        call.account, call.status = attempt.account, attempt.response.status
        return Response(attempt.body, attempt.response.status, headers=call.id_headers(), media_type=JSON)

    @staticmethod
    def _target(call: Call) -> Target:
        assert call.model is not None
        tenant = str(call.key.user_id) if call.key is not None else None
        return Target(call.model.id, call.model.aliases, call.stream, call.session, tenant)

    async def _serve_hit(self, call: Call, ticket: Ticket, raw: bytes, ttl_left: float) -> Response:
        """The stored answer in the caller's dialect, billed at the hit price and recorded as a hit."""
        message = self.cache.take_hit(call, raw)
        await self.settle(call, ticket)
        headers = call.id_headers() | ticket.headers() | hit_headers(message, ttl_left)
        return Response(replay(call, message), 200, headers=headers,
                        media_type="text/event-stream" if call.stream else JSON)

    def _upstream_error(self, call: Call, attempt: Attempt) -> Response:
        """A client error from upstream (400, 404, 413 ...): passed on as it is, recorded, not retried."""
        call.status = attempt.response.status
        call.error_type = "upstream_" + str(call.status)
        self.record_refusal(call)
        return Response(call.dialect.upstream_error(call.status, attempt.body or b""), call.status,
                        headers=call.id_headers(), media_type=JSON)

    # -- settlement ------------------------------------------------------------------------------

    async def settle(self, call: Call, ticket: Ticket) -> None:
        """Commit the request's usage row and debit, then release its ticket; a failure raises the 503 that
        withholds the answer.  A request that reached the upstream teaches the estimator what the key's
        requests use."""
        assert call.key is not None and call.model is not None
        row = call.usage_row()
        budget_use = Usage() if call.cache_hit else call.usage  # a hit spends no tokens of the budget
        try:
            await self.tracing.step(call.trail.span, "settlement",
                                    self.settler.settle(row, budget_use, ticket, prepaid=call.key.prepaid))
        except Exception as exc:
            raise GatewayError(503, "usage could not be recorded; the answer is withheld and not billed") from exc
        finally:
            call.cost_micro = row.cost_micro
        if call.account is not None and not call.cache_hit:
            self.gate.estimator.observe(call.key.id, call.body_size, call.model.id, call.usage)

    async def settle_quietly(self, call: Call, ticket: Ticket) -> bool:
        try:
            await self.settle(call, ticket)
            return True
        except GatewayError as failure:
            log.error("settling %s failed: %s", call.request_id, failure.__cause__)
            return False

    def finished(self, call: Call) -> None:
        """The request is over (answered, refused or failed): count it, log it, end its trace."""
        if self.observer is not None:
            self.observer.finished(record_of(call), call.trail.span)

    def record_refusal(self, call: Call) -> None:
        """Record a request answered with an error (nothing to wait for); unauthenticated ones are not,
        and of a flood only a sample is (billing.refusals)."""
        if call.key is not None and self.refusals.take(call.key.id, call.status, call.error_type):
            self.settler.record_later(call.usage_row())


def traceparent_of(headers: list[tuple[bytes, bytes]]) -> dict[str, str] | None:
    """A client's own W3C trace context, so the gateway's span continues its trace."""
    for name, value in headers:
        if name == b"traceparent":
            return {"traceparent": value.decode("latin-1")}
    return None
