"""Alerts: the conditions worth waking an operator for, and their delivery to webhooks.

Pure parts only: what an alert is, when each condition holds, one alert per condition and subject
per interval, the payloads (generic JSON signed with HMAC-SHA256, or Slack-compatible) and delivery
with retries. Reading the database and keeping the delivery log live in `obs.alert_monitor`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

SIGNATURE_HEADER = "X-Ccgate-Signature"
TIMESTAMP_HEADER = "X-Ccgate-Timestamp"
OPERATOR_REASON = "disabled by operator"
KINDS = ("account_disabled", "account_cooling", "no_account_available", "credit_low", "key_budget_80",
         "key_budget_100", "ledger_backlog", "test")


@dataclass(frozen=True, slots=True)
class Alert:
    """One condition about one subject (an account name, a user id, a key id, or "gateway")."""

    kind: str
    subject: str
    message: str
    severity: str = "warning"  # warning or critical
    details: Mapping[str, object] = field(default_factory=dict)

    def payload(self) -> dict[str, object]:
        return {"source": "ccgate", "alert": self.kind, "subject": self.subject, "severity": self.severity,
                "message": self.message, "details": dict(self.details), "ts_ms": int(time.time() * 1000)}


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw not in (None, "") else default


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """Thresholds, from CCGATE_ALERT_* variables."""

    cooling_minutes: float = 10.0
    credit_below_micro: int = 1_000_000
    ledger_backlog: int = 1000
    repeat_seconds: float = 3600.0  # the same condition about the same subject is sent once per this
    check_seconds: float = 30.0
    attempts: int = 4
    backoff_seconds: float = 1.0  # doubled after each failed attempt

    @classmethod
    def from_env(cls) -> AlertSettings:
        return cls(
            cooling_minutes=_env_number("CCGATE_ALERT_COOLING_MINUTES", 10.0),
            credit_below_micro=round(_env_number("CCGATE_ALERT_CREDIT_BELOW_USD", 1.0) * 1_000_000),
            ledger_backlog=int(_env_number("CCGATE_ALERT_LEDGER_BACKLOG", 1000)),
            repeat_seconds=_env_number("CCGATE_ALERT_REPEAT_SECONDS", 3600.0),
            check_seconds=_env_number("CCGATE_ALERT_CHECK_SECONDS", 30.0))


# -- conditions (pure) ------------------------------------------------------------------------

def account_alerts(accounts: Iterable[Mapping[str, Any]], cooling_since: dict[str, float], now: float,
                   settings: AlertSettings) -> list[Alert]:
    """Accounts the gateway disabled, accounts cooling longer than the threshold, and no account at
    all to route to. `cooling_since` (account name -> first seen cooling) is updated in place."""
    alerts, usable = [], 0
    threshold = settings.cooling_minutes * 60
    rows = list(accounts)
    for row in rows:
        name = str(row["name"])
        if not row["enabled"]:
            cooling_since.pop(name, None)
            reason = row.get("disabled_reason") or ""
            if reason != OPERATOR_REASON:
                alerts.append(Alert("account_disabled", name, f"account {name} was disabled: {reason}", "critical",
                                    {"reason": reason}))
            continue
        until = (row.get("cooldown_until_ms") or 0) / 1000
        if until > now:
            since = cooling_since.setdefault(name, now)
            if now - since >= threshold or until - now >= threshold:
                alerts.append(Alert("account_cooling", name,
                                    f"account {name} has been cooling down since {int(now - since)}s ago, "
                                    f"for {int(until - now)}s more", "warning",
                                    {"cooling_for_s": int(now - since), "remaining_s": int(until - now)}))
        else:
            cooling_since.pop(name, None)
        if until <= now and not row.get("unroutable"):
            usable += 1
    if usable == 0:
        alerts.append(Alert("no_account_available", "gateway",
                            "no upstream account can take a request: every account is disabled, cooling or at its "
                            "limits", "critical", {"accounts": len(rows)}))
    return alerts


def credit_alerts(users: Iterable[Mapping[str, Any]], settings: AlertSettings) -> list[Alert]:
    return [Alert("credit_low", f"user:{row['id']}",
                  f"user {row['id']} has {row['balance_micro'] / 1e6:.2f} USD of credit left "
                  f"(alert below {settings.credit_below_micro / 1e6:.2f})", "warning",
                  {"user_id": row["id"], "balance_micro": row["balance_micro"]}) for row in users]


def budget_alerts(keys: Iterable[Mapping[str, Any]]) -> list[Alert]:
    """A key at 100% of its token budget, or else at 80%."""
    alerts = []
    for row in keys:
        budget, used = int(row["token_budget"]), int(row["used"])
        kind = "key_budget_100" if used >= budget else "key_budget_80" if used >= 0.8 * budget else None
        if kind is not None:
            alerts.append(Alert(kind, f"key:{row['id']}", f"key {row['id']} used {used} of its {budget} tokens "
                                f"({100 * used // budget}%) in its window", "warning",
                                {"key_id": row["id"], "user_id": row["user_id"], "used": used, "budget": budget}))
    return alerts


def backlog_alert(depth: int, settings: AlertSettings) -> list[Alert]:
    if depth < settings.ledger_backlog:
        return []
    return [Alert("ledger_backlog", "gateway", f"{depth} usage rows wait for the database", "critical",
                  {"depth": depth})]


# -- one per condition per interval -------------------------------------------------------------

Claim = Callable[[str, float], Awaitable[bool]]


class Deduper:
    """Lets an alert through once per `repeat_seconds` per (kind, subject). `claim` may be shared
    (e.g. Redis SET NX EX) so several processes send it once between them."""

    def __init__(self, repeat_seconds: float, claim: Claim | None = None) -> None:
        self.repeat_seconds = repeat_seconds
        self._sent: dict[str, float] = {}
        self._claim = claim or self._claim_here

    async def _claim_here(self, key: str, ttl: float) -> bool:
        now = time.monotonic()
        if self._sent.get(key, -1e18) + ttl > now:
            return False
        self._sent[key] = now
        return True

    async def fresh(self, alerts: Iterable[Alert]) -> list[Alert]:
        return [alert for alert in alerts if await self._claim(f"{alert.kind}:{alert.subject}", self.repeat_seconds)]


def redis_claim(redis: Any, prefix: str) -> Claim:
    """A `Claim` over Redis: the first process to SET NX the key sends the alert."""

    async def claim(key: str, ttl: float) -> bool:
        return bool(await redis.set(f"{prefix}alert:{key}", b"1", nx=True, px=max(int(ttl * 1000), 1)))

    return claim


# -- payloads and delivery -----------------------------------------------------------------------

def sign(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=` + hex HMAC-SHA256 of "timestamp." + body: what receivers verify."""
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def render(alert: Alert, kind: str, secret: str | None) -> tuple[bytes, dict[str, str]]:
    """The body and headers for one webhook of `kind` (generic or slack)."""
    if kind == "slack":
        icon = ":rotating_light:" if alert.severity == "critical" else ":warning:"
        body = orjson.dumps({"text": f"{icon} ccgate {alert.kind}: {alert.message}"})
        return body, {"Content-Type": "application/json"}
    body = orjson.dumps(alert.payload())
    headers = {"Content-Type": "application/json", "User-Agent": "ccgate-alerts"}
    if secret:
        timestamp = str(int(time.time()))
        headers[TIMESTAMP_HEADER] = timestamp
        headers[SIGNATURE_HEADER] = sign(secret, timestamp, body)
    return body, headers


@dataclass(frozen=True, slots=True)
class Delivery:
    outcome: str  # delivered or failed
    attempts: int
    http_status: int | None
    error: str | None


async def deliver(session: aiohttp.ClientSession, url: str, body: bytes, headers: Mapping[str, str], *,
                  attempts: int, backoff_seconds: float, timeout: float = 10.0) -> Delivery:
    """POST until a 2xx, retrying connection errors, 429 and 5xx with doubling waits; a 4xx is final."""
    status: int | None = None
    error: str | None = None
    for attempt in range(1, attempts + 1):
        try:
            async with session.post(url, data=body, headers=dict(headers),
                                    timeout=aiohttp.ClientTimeout(total=timeout)) as response:
                status = response.status
                await response.read()
            if 200 <= status < 300:
                return Delivery("delivered", attempt, status, None)
            error = f"HTTP {status}"
            if status < 500 and status != 429:
                return Delivery("failed", attempt, status, error)
        except (aiohttp.ClientError, TimeoutError) as exc:
            status, error = None, type(exc).__name__
        if attempt < attempts:
            await asyncio.sleep(backoff_seconds * 2 ** (attempt - 1))
    return Delivery("failed", attempts, status, error)
