"""Settings, read once from the environment (every name starts with CCGATE_)."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from ccgate.cache.policy import CacheSettings
from ccgate.gate.durations import parse_duration

SECRET_FILE = "server-secret"


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw not in (None, "") else default


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    return raw.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Settings:
    """Everything the gateway can be told, with the embedded defaults."""

    data_dir: Path
    database_url: str
    redis_url: str | None
    redis_prefix: str
    public_url: str
    key_prefix: str
    max_body_bytes: int
    connect_timeout: float
    first_byte_timeout: float
    idle_timeout: float
    failover_attempts: int
    reload_interval: float
    default_rpm: int
    default_concurrency: int
    default_token_budget: int
    default_window: str
    cache: CacheSettings
    lease_ttl: float
    workers: int  # server processes on this database, as `serve --workers` tells its workers
    access_log: str = "off"  # off, stdout, or a file path: one JSON (or text) line per request
    log_format: str = "json"  # json or text, for the access log and the application log
    log_level: str = "INFO"  # at WARNING and above the access log keeps only failed requests
    metrics_user_labels: bool = False  # per-user request and cost series (one label per user)
    responses_retention: int = 30 * 86400  # seconds a stored Responses-API answer is kept
    # How far below zero a prepaid balance may go while requests run, for users with no overdraft of
    # their own (docs/billing.md says why none by default).
    default_overdraft_micro: int = 0

    @classmethod
    def from_env(cls) -> Settings:
        """Settings from CCGATE_* variables; the database defaults to SQLite in the data dir."""
        data_dir = Path(os.environ.get("CCGATE_DATA_DIR") or "./ccgate-data").resolve()
        database_url = os.environ.get("CCGATE_DATABASE_URL") or f"sqlite+aiosqlite:///{data_dir / 'ccgate.sqlite3'}"
        return cls(
            data_dir=data_dir,
            database_url=normalize_database_url(database_url),
            redis_url=os.environ.get("CCGATE_REDIS_URL") or None,
            redis_prefix=os.environ.get("CCGATE_REDIS_PREFIX") or "ccgate:",
            public_url=(os.environ.get("CCGATE_PUBLIC_URL") or "http://127.0.0.1:8080").rstrip("/"),
            key_prefix=os.environ.get("CCGATE_KEY_PREFIX") or "cc_user_",
            max_body_bytes=_env_int("CCGATE_MAX_BODY_BYTES", 32 * 1024 * 1024),
            connect_timeout=_env_float("CCGATE_CONNECT_TIMEOUT", 10.0),
            # Long thinking phases send pings; a silent upstream for this long is dead.
            first_byte_timeout=_env_float("CCGATE_FIRST_BYTE_TIMEOUT", 600.0),
            idle_timeout=_env_float("CCGATE_IDLE_TIMEOUT", 300.0),
            failover_attempts=_env_int("CCGATE_FAILOVER_ATTEMPTS", 3),
            reload_interval=_env_float("CCGATE_RELOAD_INTERVAL", 0.5),
            default_rpm=_env_int("CCGATE_DEFAULT_RPM", 0),
            default_concurrency=_env_int("CCGATE_DEFAULT_CONCURRENCY", 0),
            default_token_budget=_env_int("CCGATE_DEFAULT_TOKEN_BUDGET", 0),
            default_window=os.environ.get("CCGATE_DEFAULT_WINDOW") or "5h",
            lease_ttl=_env_float("CCGATE_LEASE_TTL", 60.0),
            workers=_env_int("CCGATE_WORKERS", 1),
            access_log=os.environ.get("CCGATE_ACCESS_LOG") or "off",
            log_format=(os.environ.get("CCGATE_LOG_FORMAT") or "json").lower(),
            log_level=(os.environ.get("CCGATE_LOG_LEVEL") or "INFO").upper(),
            metrics_user_labels=_env_bool("CCGATE_METRICS_USER_LABELS", False),
            responses_retention=parse_duration(os.environ.get("CCGATE_RESPONSES_RETENTION") or "30d"),
            default_overdraft_micro=round(_env_float("CCGATE_DEFAULT_OVERDRAFT_USD", 0.0) * 1_000_000),
            cache=CacheSettings(
                enabled=_env_bool("CCGATE_CACHE", True),
                ttl=_env_int("CCGATE_CACHE_TTL", 3600),
                scope=os.environ.get("CCGATE_CACHE_SCOPE") or "user",
                hit_price_bp=round(_env_float("CCGATE_CACHE_HIT_PRICE", 0.1) * 10_000),
                max_bytes=_env_int("CCGATE_CACHE_MAX_BYTES", 64 * 1024 * 1024),
                deterministic_only=_env_bool("CCGATE_CACHE_DETERMINISTIC_ONLY", False),
                coalesce=_env_bool("CCGATE_CACHE_COALESCE", False),
                exclude_models=frozenset(
                    m.strip() for m in (os.environ.get("CCGATE_CACHE_EXCLUDE_MODELS") or "").split(",") if m.strip()),
            ),
        )

    def server_secret(self) -> bytes:
        """The server secret, generated on first use into the data dir with mode 0600."""
        if env_secret := os.environ.get("CCGATE_SECRET"):
            return env_secret.encode()
        path = self.data_dir / SECRET_FILE
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
        return path.read_text().strip().encode()


def normalize_database_url(url: str) -> str:
    """Accept plain `postgresql://` and `sqlite://` URLs and pick the async drivers."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url.split("://", 1)[1]
    return url
