"""A finished request as the one record metrics, the access log and traces take."""

from __future__ import annotations

import time

from ccgate.errors import GatewayError
from ccgate.obs.record import RequestRecord
from ccgate.pipeline.context import Call

_REFUSALS = {401: "auth", 402: "credit", 403: "model"}


def refusal_of(error: GatewayError) -> str:
    """Which rule refused a request at admission, from the error it raised."""
    scope = error.extra_headers.get("x-ratelimit-scope")
    if scope is not None:
        return scope.replace(" ", "_")
    return _REFUSALS.get(error.status, "database" if error.status == 503 else str(error.status))


def record_of(call: Call) -> RequestRecord:
    """Ids, counts, costs and times of a finished call; nothing of its prompt or answer."""
    now = time.perf_counter()
    trail, usage, key = call.trail, call.usage, call.key
    upstream = now - trail.sent_at if trail.sent_at is not None and call.account is not None else 0.0
    return RequestRecord(
        request_id=call.request_id, route=call.route, dialect=call.dialect.name, status=call.status,
        model=call.model.id if call.model else "", key_id=key.id if key else None,
        user_id=key.user_id if key else None, session_id=call.session_id,
        account=call.account.name if call.account else None, stream=call.stream, error_type=call.error_type,
        refusal=call.refusal, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens, cache_write_5m_tokens=usage.cache_write_5m_tokens,
        cache_write_1h_tokens=usage.cache_write_1h_tokens, cost_micro=call.cost_micro or 0,
        cache=call.cache_status if call.refusal is None else None,  # refused: the cache was never looked in
        total_seconds=now - call.started, upstream_seconds=upstream,
        upstream_ttfb_seconds=(trail.first_byte_at - trail.sent_at
                               if trail.first_byte_at is not None and trail.sent_at is not None else None),
        attempts=tuple(trail.attempts),
    )
