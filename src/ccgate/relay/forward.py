"""The failover loop: sticky session, pick an account, send, classify the failure, cool down, try the next."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import orjson

from ccgate.errors import GatewayError
from ccgate.obs.record import UpstreamAttempt
from ccgate.obs.tracing import Tracing
from ccgate.relay.client import UPSTREAM_ERRORS
from ccgate.relay.headers import upstream_headers
from ccgate.route.evidence import Strikes, rate_limit_room
from ccgate.route.pool import Account
from ccgate.route.router import Router, rate_limit_wait

log = logging.getLogger("ccgate.forward")

# Upstream statuses worth another account, and the cause each one cools the account down for.
RETRYABLE_CAUSES = {429: "rate_limited", 529: "overloaded", 401: "unauthorized", 403: "forbidden"}


class Upstream(Protocol):
    """The HTTP client the loop sends through (the real one is relay.client.UpstreamClient)."""

    idle_timeout: float

    async def post(self, base_url: str, path: str, body: bytes, headers: dict[str, str]) -> aiohttp.ClientResponse:
        ...


class Sticky(Protocol):
    """Which account a session last used (route.shared)."""

    async def get(self, session: str) -> int | None: ...

    def put(self, session: str, account_id: int) -> None: ...


@dataclass(frozen=True, slots=True)
class Target:
    """What the loop needs to know of a request to route it."""

    model_id: str
    aliases: tuple[str, ...]
    stream: bool
    session: str | None = None
    tenant: str | None = None  # who sent it (the user), for telling one user's failures from many


@dataclass(slots=True)
class Attempt:
    """An upstream answer that ends the failover loop: a 200, or an error for the client to see."""

    response: aiohttp.ClientResponse
    account: Account
    body: bytes | None  # read already, unless it is a stream still to relay
    moved: bool = False  # the session's account could not serve, so its prompt cache was left behind


@dataclass(slots=True)
class Trail:
    """What the loop leaves for observing a request: each attempt, and when the answer began."""

    attempts: list[UpstreamAttempt] = field(default_factory=list)
    sent_at: float | None = None  # perf_counter when the answering attempt was sent
    first_byte_at: float | None = None  # ... and when its response headers came
    span: Any = None  # the request's trace span, if traces are on


@dataclass(slots=True)
class Failure:
    """One failed attempt: what upstream said, on which account, and what it would cool the account for."""

    status: int | None  # None: unreachable or timed out
    message: str
    retry_after: float | None = None
    account: Account | None = None
    cause: str = "server_error"
    room: bool = False  # a 429 whose own rate-limit headers show room left: about the request

    @property
    def suspect(self) -> bool:
        """Whether the account may be at fault but needs evidence (a credential refusal is probed instead,
        and a 429 with no room left is the account's own at once)."""
        return self.cause not in ("unauthorized", "forbidden") and (self.status != 429 or self.room)

    def same_as(self, other: Failure) -> bool:
        """The same failure on another account: the request, not the accounts, is at fault."""
        return self.status == other.status and (self.status != 429 or (self.room and other.room))


def error_message(raw: bytes | None, status: int) -> str:
    """The upstream's own error message, or a plain one."""
    try:
        return str(orjson.loads(raw or b"")["error"]["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return f"upstream answered HTTP {status}"


@dataclass
class Forwarder:
    """Sends a request to the best account, failing over to the next before any byte reached the client.

    Only evidence against an account cools it (see route.evidence): a failure that another account
    then answered, a 429 with the account's window used up, or failures from several users; a request
    that fails the same way on two accounts is answered with that failure and cools nothing.  An
    account that refuses a request's credentials is reported through `on_rejected` (a probe, off the
    request path, decides); nothing here waits on the database.
    """

    router: Router
    sticky: Sticky
    upstream: Upstream
    attempts: int = 3
    on_rejected: Callable[[Account, str], None] = field(default=lambda account, reason: None)
    tracing: Tracing = field(default_factory=Tracing)
    strikes: Strikes = field(default_factory=Strikes)

    async def send(self, target: Target, path: str, body: bytes,
                   client_headers: list[tuple[bytes, bytes]], trail: Trail | None = None) -> Attempt:
        router, tracing = self.router, self.tracing
        trail = trail if trail is not None else Trail()
        stuck = await self.sticky.get(target.session) if target.session else None
        tried: set[int] = set()
        failures: list[Failure] = []
        for _ in range(self.attempts):
            choice = tracing.call(trail.span, "routing", router.pick, target.model_id, target.aliases, tried, stuck)
            if choice is None:
                break
            account = choice.account
            tried.add(account.id)
            router.begin(account)
            headers = upstream_headers(client_headers, account.api_key)
            span = None if trail.span is None else tracing.start_upstream(trail.span, account.name, target.model_id)
            if span is not None:
                headers |= tracing.traceparent(span)
            trail.sent_at = time.perf_counter()
            try:
                response = await self.upstream.post(account.base_url, path, body, headers)
                trail.first_byte_at = time.perf_counter()
                streaming = response.status == 200 and target.stream
                raw = None if streaming else await response.read()
            except UPSTREAM_ERRORS as exc:
                router.end(account)
                failure = Failure(None, f"upstream unreachable: {type(exc).__name__}", account=account,
                                  cause="unreachable")
                trail.attempts.append(UpstreamAttempt(account.name, "unreachable"))
                if span is not None:
                    tracing.end_upstream(span, None, "unreachable")
            else:
                status = response.status
                if status == 200 or (status < 500 and status not in RETRYABLE_CAUSES):
                    trail.attempts.append(UpstreamAttempt(account.name))
                    if span is not None:
                        tracing.end_upstream(span, status)
                    if status == 200:
                        router.succeeded(account, response.headers)
                        if target.session:
                            self.sticky.put(target.session, account.id)
                    if not streaming:
                        router.end(account)
                    self._judge(failures, target, answered=status == 200)
                    return Attempt(response, account, raw, moved=choice.moved and status == 200)
                router.end(account)
                cause = RETRYABLE_CAUSES.get(status, "server_error")
                # Only 429 waits are told; rate limits are the account's own, so its meter decides.
                retry_after = rate_limit_wait(response.headers) if status == 429 else None
                failure = Failure(status, error_message(raw, status), retry_after, account, cause,
                                  room=status == 429 and rate_limit_room(response.headers))
                if status == 429:
                    router.learn_limits(account, response.headers)
                trail.attempts.append(UpstreamAttempt(account.name, cause))
                if span is not None:
                    tracing.end_upstream(span, status, cause)
            if failure.cause in ("unauthorized", "forbidden"):
                self.on_rejected(account, f"upstream answered {failure.status}: {failure.message}")
            elif failure.status == 429 and not failure.room:
                router.failed(account, "rate_limited", failure.message, failure.retry_after)
            if any(failure.same_as(earlier) for earlier in failures):
                failures.append(failure)
                raise self._exhausted(target, failures)  # the request's fault: no more accounts, no cooldown
            failures.append(failure)
        self._judge(failures, target, answered=False)
        raise self._exhausted(target, failures)

    def _judge(self, failures: list[Failure], target: Target, *, answered: bool) -> None:
        """Act on the failures of a request that did not fail the same way twice: when another account
        answered it, each failure was its account's; otherwise each is one strike (route.evidence)."""
        for failure in failures:
            if failure.account is None or not failure.suspect:
                continue
            if answered or self.strikes.strike(failure.account.id, target.tenant or "-"):
                self.router.failed(failure.account, failure.cause, failure.message, failure.retry_after)

    def _exhausted(self, target: Target, failures: list[Failure]) -> GatewayError:
        """502 with the last upstream message; 429 when every account was rate-limited or is at its
        own limits; 503 when no account could be tried, with the soonest end of a cooldown."""
        if not failures:
            status, wait = self.router.why_none(target.model_id, target.aliases)
            if status == 429:
                return GatewayError(429, "every upstream account for this model is at its limits; retry shortly",
                                    retry_after=wait)
            return GatewayError(503, f"no healthy upstream account serves {target.model_id}; retry shortly",
                                retry_after=wait if wait is not None else 5)
        if all(failure.status == 429 for failure in failures):
            waits = [failure.retry_after for failure in failures if failure.retry_after]
            return GatewayError(429, "every upstream account is rate-limited; retry shortly",
                                retry_after=min(waits) if waits else 5)
        return GatewayError(502, f"upstream error: {failures[-1].message}")
