"""Prometheus metrics the gateway exposes at /metrics.

Label cardinality is bounded: routes, dialects, status classes, models from the catalog and the
operator's accounts. Keys never become labels; users do only when the operator asks for it
(CCGATE_METRICS_USER_LABELS), in their own two series.

With `serve --workers N` every worker writes its values to files in PROMETHEUS_MULTIPROC_DIR
(prometheus-client's multiprocess mode, set up by `prepare_multiprocess_dir` before the workers
start) and any worker answering a scrape sums all of them: see `render`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from ccgate.obs.record import RequestRecord

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
REGISTRY = CollectorRegistry()

# Latency buckets from 0.5 ms (the gateway's own overhead) to 10 min (a long thinking stream).
ADDED_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
UPSTREAM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)

STATE_DEGRADED = Gauge("ccgate_state_degraded", "1 while Redis is unreachable and limits are enforced per process",
                       registry=REGISTRY, multiprocess_mode="livemax")
DATABASE_UP = Gauge("ccgate_database_up", "1 while the database answers; 0 means new requests get 503",
                    registry=REGISTRY, multiprocess_mode="livemin")
REDIS_UP = Gauge("ccgate_redis_up", "1 while Redis answers (absent when no Redis is configured)",
                 registry=REGISTRY, multiprocess_mode="livemin")

REQUESTS = Counter("ccgate_requests", "Finished requests", ["route", "dialect", "status_class", "model"],
                   registry=REGISTRY)
REFUSALS = Counter("ccgate_admission_refusals", "Requests admission refused, by reason", ["reason"],
                   registry=REGISTRY)
ADDED = Histogram("ccgate_added_seconds", "Time the gateway itself added to a request (total minus upstream)",
                  ["route"], buckets=ADDED_BUCKETS, registry=REGISTRY)
UPSTREAM_TTFB = Histogram("ccgate_upstream_ttfb_seconds", "From sending a request upstream to its first byte",
                          ["model"], buckets=UPSTREAM_BUCKETS, registry=REGISTRY)
TOTAL = Histogram("ccgate_request_seconds", "From a request's arrival to its last byte", ["route"],
                  buckets=UPSTREAM_BUCKETS, registry=REGISTRY)
TOKENS = Counter("ccgate_tokens", "Tokens billed, by model and class", ["model", "class"], registry=REGISTRY)
COST = Counter("ccgate_cost_micro", "Cost billed in micro-dollars (1e-6 USD), by model", ["model"],
               registry=REGISTRY)
CACHE = Counter("ccgate_response_cache", "Response-cache lookups by outcome (hit, miss, bypass)", ["outcome"],
                registry=REGISTRY)
ATTEMPTS = Counter("ccgate_upstream_attempts", "Requests sent to an upstream account", ["account"],
                   registry=REGISTRY)
FAILURES = Counter("ccgate_upstream_failures", "Upstream attempts that failed over, by account and cause",
                   ["account", "cause"], registry=REGISTRY)
USER_REQUESTS = Counter("ccgate_user_requests", "Finished requests per user (only with CCGATE_METRICS_USER_LABELS)",
                        ["user"], registry=REGISTRY)
USER_COST = Counter("ccgate_user_cost_micro", "Cost per user in micro-dollars (only with CCGATE_METRICS_USER_LABELS)",
                    ["user"], registry=REGISTRY)

ACCOUNT_STATE = Gauge("ccgate_account_state", "1 for the state each account is in: healthy, cooling or disabled",
                      ["account", "state"], registry=REGISTRY, multiprocess_mode="livemax")
ACCOUNT_IN_FLIGHT = Gauge("ccgate_account_in_flight", "Requests in flight per account", ["account"],
                          registry=REGISTRY, multiprocess_mode="livesum")
ACCOUNT_ROUTABLE = Gauge("ccgate_account_routable", "1 if a request could be routed to the account now, else 0",
                         ["account"], registry=REGISTRY, multiprocess_mode="livemax")
ACCOUNT_UNROUTABLE = Gauge("ccgate_account_unroutable", "1 for the reason a request cannot go to the account now",
                           ["account", "reason"], registry=REGISTRY, multiprocess_mode="livemin")
ACCOUNT_LIMIT = Gauge("ccgate_account_ratelimit_limit", "The account's upstream rate limit (anthropic-ratelimit-*)",
                      ["account", "kind"], registry=REGISTRY, multiprocess_mode="livemax")
ACCOUNT_REMAINING = Gauge("ccgate_account_ratelimit_remaining", "What the upstream last said remains of the limit",
                          ["account", "kind"], registry=REGISTRY, multiprocess_mode="livemin")

LEDGER_QUEUE = Gauge("ccgate_ledger_queue_depth", "Usage rows waiting for the ledger's group commit",
                     registry=REGISTRY, multiprocess_mode="livesum")
LEDGER_COMMIT = Histogram("ccgate_ledger_commit_seconds", "Duration of one ledger group commit",
                          buckets=COMMIT_BUCKETS, registry=REGISTRY)

TOKEN_CLASSES = ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h")
FLUSH_EVERY = 256  # records observed before they are folded into the series without waiting for a scrape
_pending: list[RequestRecord] = []
_commit_seconds: list[float] = []  # ledger group commits observed since the last flush
_queue_depth: int | None = None  # the ledger queue's depth after the last of them
_children: dict[tuple[Any, ...], Any] = {}  # (metric, *labels) -> child
_user_labels = os.environ.get("CCGATE_METRICS_USER_LABELS", "").strip().lower() in ("1", "true", "yes", "on")


def set_user_labels(enabled: bool) -> None:
    """Count requests and cost per user too (a label per user: mind the cardinality)."""
    global _user_labels
    _user_labels = enabled


def observe_request(record: RequestRecord) -> None:
    """Count one finished request (the hot path calls this once per request).

    It only queues the record: `flush` folds queued records into the series in one pass (summing
    counters, bucketing histogram values), at every scrape, every second from `flush_loop`, and
    after every FLUSH_EVERY records, which keeps the cost per request to a list append.
    """
    _pending.append(record)
    if len(_pending) >= FLUSH_EVERY:
        flush()


def _child(metric: Any, *labels: str) -> Any:
    child = _children.get((metric, *labels))
    if child is None:
        child = _children[(metric, *labels)] = metric.labels(*labels)
    return child


def _observe_many(histogram: Any, observed: list[float]) -> None:
    """Histogram.observe for many values at once: one increment per bucket touched and one of the sum
    (prometheus-client's own per-value loop, batched; its _sum and _buckets hold in both modes)."""
    bounds = histogram._upper_bounds
    counts = [0] * len(bounds)
    for value in observed:
        counts[bisect_left(bounds, value)] += 1
    histogram._sum.inc(sum(observed))
    for index, count in enumerate(counts):
        if count:
            histogram._buckets[index].inc(count)


def flush() -> None:
    """Fold the queued records into the series: first summed per label set in plain dicts (one lookup
    a record for its request, token and cost counts), then applied to each series once."""
    global _queue_depth
    if _commit_seconds:
        commits = _commit_seconds[:]
        del _commit_seconds[: len(commits)]
        _observe_many(LEDGER_COMMIT, commits)
    if _queue_depth is not None:
        LEDGER_QUEUE.set(_queue_depth)
        _queue_depth = None
    if not _pending:
        return
    records = _pending[:]
    del _pending[: len(records)]
    totals: dict[tuple[str, str, int, str], list[int]] = {}  # (route, dialect, status class, model) -> sums
    counts: dict[tuple[Any, ...], int] = {}  # (metric, *labels) -> amount
    values: dict[tuple[Any, ...], list[float]] = {}  # (histogram, *labels) -> observations
    for record in records:
        route, model = record.route, record.model
        key = (route, record.dialect, record.status // 100, model)
        sums = totals.get(key)
        if sums is None:
            sums = totals[key] = [0, 0, 0, 0, 0, 0, 0]
        sums[0] += 1
        if model:
            sums[1] += record.input_tokens
            sums[2] += record.output_tokens
            sums[3] += record.cache_read_tokens
            sums[4] += record.cache_write_5m_tokens
            sums[5] += record.cache_write_1h_tokens
            sums[6] += record.cost_micro
            if record.upstream_ttfb_seconds is not None:
                values.setdefault((UPSTREAM_TTFB, model), []).append(record.upstream_ttfb_seconds)
        values.setdefault((ADDED, route), []).append(record.added_seconds)
        values.setdefault((TOTAL, route), []).append(record.total_seconds)
        if record.refusal is not None:
            _count(counts, REFUSALS, record.refusal)
        if record.cache is not None:
            _count(counts, CACHE, record.cache.lower())
        for attempt in record.attempts:
            _count(counts, ATTEMPTS, attempt.account)
            if attempt.cause is not None:
                _count(counts, FAILURES, attempt.account, attempt.cause)
        if _user_labels and record.user_id is not None:
            _count(counts, USER_REQUESTS, str(record.user_id))
            _count(counts, USER_COST, str(record.user_id), amount=record.cost_micro)
    for (route, dialect, status, model), sums in totals.items():
        _child(REQUESTS, route, dialect, f"{status}xx", model).inc(sums[0])
        if model:
            for token_class, amount in zip(TOKEN_CLASSES, sums[1:6], strict=True):
                if amount:
                    _child(TOKENS, model, token_class).inc(amount)
            if sums[6]:
                _child(COST, model).inc(sums[6])
    for (metric, *labels), amount in counts.items():
        if amount:
            _child(metric, *labels).inc(amount)
    for (metric, *labels), observed in values.items():
        _observe_many(_child(metric, *labels), observed)


def _count(counts: dict[tuple[Any, ...], int], metric: Any, *labels: str, amount: int = 1) -> None:
    key = (metric, *labels)
    counts[key] = counts.get(key, 0) + amount


async def flush_loop(interval: float = 1.0) -> None:
    """A serving process's background task: keep the series at most `interval` behind, which matters
    with several workers (a scrape in one cannot flush another)."""
    while True:
        await asyncio.sleep(interval)
        flush()


@dataclass(frozen=True, slots=True)
class AccountGauge:
    """One account as the metrics show it (from the router's view in this process)."""

    name: str
    state: str  # healthy, cooling or disabled
    in_flight: int
    unroutable: str | None  # why no request can go there now, or None
    limits: dict[str, tuple[int | None, int | None]]  # kind -> (limit, remaining)


ACCOUNT_STATES = ("healthy", "cooling", "disabled")


_account_series: dict[Any, set[tuple[str, ...]]] = {}  # per gauge, the label sets set last time


def _set_all(gauge: Any, values: dict[tuple[str, ...], float]) -> None:
    """Set these series and zero the ones set last time but not now. (Zeroed, not removed: with
    several workers a removed series would keep its last value in the worker's file.)"""
    for labels in _account_series.get(gauge, set()) - values.keys():
        gauge.labels(*labels).set(0)
    for labels, value in values.items():
        gauge.labels(*labels).set(value)
    _account_series[gauge] = set(values)


def observe_accounts(accounts: Iterable[AccountGauge]) -> None:
    """Set the per-account gauges (called periodically, not per request)."""
    state: dict[tuple[str, ...], float] = {}
    in_flight: dict[tuple[str, ...], float] = {}
    routable: dict[tuple[str, ...], float] = {}
    unroutable: dict[tuple[str, ...], float] = {}
    limit: dict[tuple[str, ...], float] = {}
    remaining: dict[tuple[str, ...], float] = {}
    for account in accounts:
        name = account.name
        state.update({(name, each): 1 if each == account.state else 0 for each in ACCOUNT_STATES})
        in_flight[(name,)] = account.in_flight
        routable[(name,)] = 0 if account.unroutable else 1
        if account.unroutable:
            unroutable[(name, account.unroutable)] = 1
        for kind, (size, left) in account.limits.items():
            if size is not None:
                limit[(name, kind)] = size
            if left is not None:
                remaining[(name, kind)] = left
    for gauge, values in ((ACCOUNT_STATE, state), (ACCOUNT_IN_FLIGHT, in_flight), (ACCOUNT_ROUTABLE, routable),
                          (ACCOUNT_UNROUTABLE, unroutable), (ACCOUNT_LIMIT, limit), (ACCOUNT_REMAINING, remaining)):
        _set_all(gauge, values)


def observe_ledger_commit(seconds: float, depth: int) -> None:
    """One group commit took `seconds`; `depth` rows still wait (folded in by `flush`, like requests)."""
    global _queue_depth
    _commit_seconds.append(seconds)
    _queue_depth = depth


def prepare_multiprocess_dir(directory: Path) -> None:
    """Before `serve --workers N` starts its workers: an empty directory for their metric files, named
    in the environment the workers inherit (prometheus-client reads it when it is first imported)."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(directory)


def worker_exited(pid: int) -> None:
    """Forget a dead worker's live gauges (its counters stay in the sums)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def render() -> tuple[bytes, str]:
    """The exposition text and its content type: this process alone, or all workers summed."""
    flush()
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
