"""Prometheus metrics the gateway exposes at /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

REGISTRY = CollectorRegistry()

STATE_DEGRADED = Gauge("ccgate_state_degraded",
                       "1 while Redis is unreachable and limits are enforced per process", registry=REGISTRY)
DATABASE_UP = Gauge("ccgate_database_up", "1 while the database answers; 0 means new requests get 503",
                    registry=REGISTRY)
