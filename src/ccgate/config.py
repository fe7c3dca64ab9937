"""Settings, read once from the environment (every name starts with CCGATE_)."""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path

from ccgate.cache.policy import CacheSettings
from ccgate.gate.durations import parse_duration

SECRET_FILE = "server-secret"


BOOLEANS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}
CACHE_SCOPES = ("user", "key", "global")


class SettingsError(ValueError):
    """A CCGATE_ variable with a value the gateway cannot use; the message names it and what it accepts."""


def _raw(name: str) -> str | None:
    raw = os.environ.get(name)
    return None if raw is None or raw.strip() == "" else raw.strip()


def _env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = _raw(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.lstrip("-").isdigit()) or int(raw) < minimum:
        raise SettingsError(f"{name}={raw!r}: expected a whole number of {minimum} or more")
    return int(raw)


def _env_float(name: str, default: float, *, positive: bool = False) -> float:
    raw = _raw(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise SettingsError(f"{name}={raw!r}: expected a number {'above' if positive else 'of'} 0"
                            f"{'' if positive else ' or more'}")
    return value


def _env_bool(name: str, default: bool) -> bool:
    raw = _raw(name)
    if raw is None:
        return default
    if raw.lower() not in BOOLEANS:
        raise SettingsError(f"{name}={raw!r}: expected one of {', '.join(BOOLEANS)}")
    return BOOLEANS[raw.lower()]


def _env_choice(name: str, default: str, choices: tuple[str, ...],
                normalize: Callable[[str], str] = lambda raw: raw) -> str:
    raw = _raw(name)
    if raw is None:
        return default
    raw = normalize(raw)
    if raw not in choices:
        raise SettingsError(f"{name}={raw!r}: expected one of {', '.join(choices)}")
    return raw


def _env_window(name: str, default: str) -> str:
    raw = _raw(name) or default
    try:
        parse_duration(raw)
    except ValueError as error:
        raise SettingsError(f"{name}={raw!r}: {error}") from None
    return raw


def _env_networks(name: str) -> tuple[IPv4Network | IPv6Network, ...]:
    raw = _raw(name)
    if raw is None:
        return ()
    try:
        return tuple(ip_network(part.strip(), strict=False) for part in raw.split(",") if part.strip())
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected IP addresses or networks separated by commas, "
                            "e.g. 10.0.0.1,192.168.0.0/16") from None


def _env_url(name: str, default: str, schemes: tuple[str, ...]) -> str:
    raw = _raw(name) or default
    if raw and not raw.startswith(schemes):
        raise SettingsError(f"{name}={raw!r}: expected a URL starting with {' or '.join(schemes)}")
    return raw


@dataclass(frozen=True)
class HttpLimits:
    """The HTTP layer's limits (seconds, bytes, connections), enforced by ccgate.http.server_limits."""

    head_timeout: float = 10.0
    body_timeout: float = 60.0
    max_head_bytes: int = 64 * 1024
    max_connections: int = 1000


def http_limits_from_env() -> HttpLimits:
    """From CCGATE_HTTP_HEAD_TIMEOUT, CCGATE_HTTP_BODY_TIMEOUT, CCGATE_HTTP_MAX_HEADER_BYTES and
    CCGATE_HTTP_MAX_CONNECTIONS."""
    default = HttpLimits()
    return HttpLimits(
        head_timeout=_env_float("CCGATE_HTTP_HEAD_TIMEOUT", default.head_timeout, positive=True),
        body_timeout=_env_float("CCGATE_HTTP_BODY_TIMEOUT", default.body_timeout, positive=True),
        max_head_bytes=_env_int("CCGATE_HTTP_MAX_HEADER_BYTES", default.max_head_bytes, minimum=1024),
        max_connections=_env_int("CCGATE_HTTP_MAX_CONNECTIONS", default.max_connections, minimum=1),
    )



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
    http_limits: HttpLimits = field(default_factory=HttpLimits)
    # Proxies whose X-Forwarded-For is believed (the web pages' throttles); none by default.
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()
    signups_per_hour: int = 5  # per client address, on the dashboard's sign-up page
    login_failures_per_address: int = 20  # in 15 minutes, before that address waits (with backoff)

    @classmethod
    def from_env(cls) -> Settings:
        """Settings from CCGATE_* variables; the database defaults to SQLite in the data dir.  Raises
        SettingsError, naming the variable and the values it accepts, for any malformed value."""
        data_dir = Path(os.environ.get("CCGATE_DATA_DIR") or "./ccgate-data").resolve()
        database_url = os.environ.get("CCGATE_DATABASE_URL") or f"sqlite+aiosqlite:///{data_dir / 'ccgate.sqlite3'}"
        return cls(
            data_dir=data_dir,
            database_url=normalize_database_url(database_url),
            redis_url=_env_url("CCGATE_REDIS_URL", "", ("redis://", "rediss://", "unix://")) or None,
            redis_prefix=os.environ.get("CCGATE_REDIS_PREFIX") or "ccgate:",
            public_url=_env_url("CCGATE_PUBLIC_URL", "http://127.0.0.1:8080", ("http://", "https://")).rstrip("/"),
            key_prefix=os.environ.get("CCGATE_KEY_PREFIX") or "cc_user_",
            max_body_bytes=_env_int("CCGATE_MAX_BODY_BYTES", 32 * 1024 * 1024, minimum=1),
            connect_timeout=_env_float("CCGATE_CONNECT_TIMEOUT", 10.0, positive=True),
            # Long thinking phases send pings; a silent upstream for this long is dead.
            first_byte_timeout=_env_float("CCGATE_FIRST_BYTE_TIMEOUT", 600.0, positive=True),
            idle_timeout=_env_float("CCGATE_IDLE_TIMEOUT", 300.0, positive=True),
            failover_attempts=_env_int("CCGATE_FAILOVER_ATTEMPTS", 3, minimum=1),
            reload_interval=_env_float("CCGATE_RELOAD_INTERVAL", 0.5),
            default_rpm=_env_int("CCGATE_DEFAULT_RPM", 0),
            default_concurrency=_env_int("CCGATE_DEFAULT_CONCURRENCY", 0),
            default_token_budget=_env_int("CCGATE_DEFAULT_TOKEN_BUDGET", 0),
            default_window=_env_window("CCGATE_DEFAULT_WINDOW", "5h"),
            lease_ttl=_env_float("CCGATE_LEASE_TTL", 60.0, positive=True),
            workers=_env_int("CCGATE_WORKERS", 1, minimum=1),
            access_log=os.environ.get("CCGATE_ACCESS_LOG") or "off",
            log_format=_env_choice("CCGATE_LOG_FORMAT", "json", ("json", "text"), str.lower),
            log_level=_env_choice("CCGATE_LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"), str.upper),
            metrics_user_labels=_env_bool("CCGATE_METRICS_USER_LABELS", False),
            responses_retention=parse_duration(_env_window("CCGATE_RESPONSES_RETENTION", "30d")),
            default_overdraft_micro=round(_env_float("CCGATE_DEFAULT_OVERDRAFT_USD", 0.0) * 1_000_000),
            cache=CacheSettings(
                enabled=_env_bool("CCGATE_CACHE", True),
                ttl=_env_int("CCGATE_CACHE_TTL", 3600),
                scope=_env_choice("CCGATE_CACHE_SCOPE", "user", CACHE_SCOPES),
                hit_price_bp=round(_env_float("CCGATE_CACHE_HIT_PRICE", 0.1) * 10_000),
                max_bytes=_env_int("CCGATE_CACHE_MAX_BYTES", 64 * 1024 * 1024),
                deterministic_only=_env_bool("CCGATE_CACHE_DETERMINISTIC_ONLY", False),
                coalesce=_env_bool("CCGATE_CACHE_COALESCE", False),
                exclude_models=frozenset(
                    m.strip() for m in (os.environ.get("CCGATE_CACHE_EXCLUDE_MODELS") or "").split(",") if m.strip()),
            ),
            http_limits=http_limits_from_env(),
            trusted_proxies=_env_networks("CCGATE_TRUSTED_PROXIES"),
            signups_per_hour=_env_int("CCGATE_SIGNUPS_PER_HOUR", 5, minimum=1),
            login_failures_per_address=_env_int("CCGATE_LOGIN_FAILURES_PER_ADDRESS", 20, minimum=1),
        )

    def server_secret(self) -> bytes:
        """The server secret, generated on first use into the data dir with mode 0600."""
        if env_secret := os.environ.get("CCGATE_SECRET"):
            return env_secret.encode()
        path = self.data_dir / SECRET_FILE
        if not path.exists():
            self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
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
