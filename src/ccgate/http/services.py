"""What the HTTP handlers may use of the gateway: a narrow, typed seam (app.Gateway provides it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from redis.asyncio import Redis
from starlette.requests import Request

from ccgate.billing.catalog import Catalog
from ccgate.config import Settings
from ccgate.crypto import SecretBox
from ccgate.gate.admission import Gate
from ccgate.gate.keys import KeyRecord
from ccgate.ops import Operations
from ccgate.pipeline.caching import ResponseCache
from ccgate.pipeline.core import Pipeline
from ccgate.pipeline.stored_responses import StoredResponses
from ccgate.state.base import AdmissionState
from ccgate.store.rows import UsageRow


class Services(Protocol):
    """The parts of one serving process that requests reach."""

    settings: Settings
    box: SecretBox  # the server secret's keyed hash, for CSRF tokens
    redis: Redis | None  # shared by the web pages' throttles when there are several processes
    ops: Operations
    gate: Gate
    state: AdmissionState
    pipeline: Pipeline
    cache: ResponseCache
    catalog: Catalog
    responses: StoredResponses

    def authenticate(self, headers: Mapping[str, str]) -> KeyRecord:
        """The caller's key, or a 401 GatewayError."""
        ...

    async def usage_row(self, request_id: str) -> UsageRow | None:
        """A request's committed usage row."""
        ...

    def redis_status(self) -> str:
        """"off", "ok" or "degraded", for the readiness check."""
        ...


def services(request: Request) -> Services:
    """The services of the app serving this request."""
    found: Services = request.app.state.gateway
    return found
