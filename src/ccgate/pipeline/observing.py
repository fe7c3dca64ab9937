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
    trail, usage, key, account, model = call.trail, call.usage, call.key, call.account, call.model
    # The required fields first and the rest set one by one: a 24-keyword call costs three times as much.
    record = RequestRecord(call.request_id, call.route, call.dialect.name, call.status)
    record.model = model.id if model else ""
    if key is not None:
        record.key_id, record.user_id = key.id, key.user_id
    record.session_id, record.stream = call.session_id, call.stream
    record.error_type, record.refusal = call.error_type, call.refusal
    record.input_tokens, record.output_tokens = usage.input_tokens, usage.output_tokens
    record.cache_read_tokens = usage.cache_read_tokens
    record.cache_write_5m_tokens = usage.cache_write_5m_tokens
    record.cache_write_1h_tokens = usage.cache_write_1h_tokens
    record.cost_micro = call.cost_micro or 0
    record.cache = call.cache_status if call.refusal is None else None  # refused: the cache was never looked in
    record.total_seconds = now - call.started
    if account is not None:
        record.account = account.name
        if trail.sent_at is not None:
            record.upstream_seconds = now - trail.sent_at
            if trail.first_byte_at is not None:
                record.upstream_ttfb_seconds = trail.first_byte_at - trail.sent_at
    record.attempts = tuple(trail.attempts)
    return record
