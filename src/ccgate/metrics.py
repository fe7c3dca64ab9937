"""Moved to ccgate.obs.metrics; this shim keeps old imports working until the lead removes it."""

from ccgate.obs.metrics import DATABASE_UP, REDIS_UP, REGISTRY, STATE_DEGRADED  # noqa: F401
