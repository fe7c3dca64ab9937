"""Confirming a 401/403 before an account is disabled: a cheap probe with the account's own credentials.

A request can draw a 401 or 403 for reasons of its own (a beta header, a model, a crafted body), so
one refusal is only a suspicion.  `CredentialProbe.suspect` asks upstream once, off the request path,
`GET /v1/models?limit=1` with nothing of the request in it; only a 401 or 403 to that probe disables
the account.  Probes are deduplicated per account: one at a time, and none again within `interval`
seconds of a probe that found the credentials good.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from ccgate.route.pool import Account

log = logging.getLogger("ccgate.probe")

PROBE_PATH = "/v1/models?limit=1"
PROBE_INTERVAL = 30.0
ANTHROPIC_VERSION = "2023-06-01"
REFUSED = (401, 403)


class ProbeClient(Protocol):
    """What a probe sends through (relay.client.UpstreamClient.get_status)."""

    async def get_status(self, base_url: str, path: str, headers: dict[str, str]) -> int | None:
        """The status of a GET, or None when upstream could not be reached."""
        ...


class CredentialProbe:
    """Probes accounts suspected of bad credentials and reports the confirmed ones."""

    def __init__(self, client: ProbeClient, on_confirmed: Callable[[Account, str], Awaitable[None]],
                 interval: float = PROBE_INTERVAL) -> None:
        self._client = client
        self._on_confirmed = on_confirmed
        self.interval = interval
        self._probing: dict[int, asyncio.Task[bool]] = {}
        self._cleared_at: dict[int, float] = {}  # monotonic time of the last probe that found good credentials

    def suspect(self, account: Account, reason: str) -> None:
        """Upstream refused a request on this account: probe it in the background, unless a probe
        is under way or recently found the credentials good."""
        if account.id in self._probing:
            return
        cleared = self._cleared_at.get(account.id)
        if cleared is not None and time.monotonic() - cleared < self.interval:
            return
        task = asyncio.get_running_loop().create_task(self.check(account, reason), name=f"probe-{account.id}")
        self._probing[account.id] = task
        task.add_done_callback(lambda _: self._probing.pop(account.id, None))

    async def check(self, account: Account, reason: str) -> bool:
        """Probe now; True when upstream refused the account's own credentials (and it was reported)."""
        headers = {"x-api-key": account.api_key, "anthropic-version": ANTHROPIC_VERSION}
        try:
            status = await self._client.get_status(account.base_url, PROBE_PATH, headers)
        except Exception as exc:  # a probe that cannot finish proves nothing
            log.warning("account %s: credential probe failed: %s", account.name, type(exc).__name__)
            return False
        if status in REFUSED:
            log.warning("account %s: credential probe answered %s; disabling it", account.name, status)
            await self._on_confirmed(account, f"{reason} (confirmed by a credential probe: {status})")
            return True
        if status is not None and status < 500:
            self._cleared_at[account.id] = time.monotonic()
            log.info("account %s: credential probe answered %s; the refusal was the request's", account.name, status)
        return False

    async def drain(self) -> None:
        """Wait for the probes under way."""
        await asyncio.gather(*self._probing.values(), return_exceptions=True)

    async def stop(self) -> None:
        """Cancel the probes under way."""
        tasks = list(self._probing.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
