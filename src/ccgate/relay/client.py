"""The upstream HTTP client: one pooled aiohttp session per upstream base URL."""

from __future__ import annotations

import asyncio

import aiohttp

from ccgate.relay.deadline import Deadlines

UPSTREAM_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError)


class UpstreamClient:
    """Sends requests to upstream accounts over kept-alive pooled connections."""

    def __init__(self, *, connect_timeout: float, first_byte_timeout: float, idle_timeout: float) -> None:
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._first_byte_timeout = first_byte_timeout
        self._deadlines = Deadlines(resolution=min(first_byte_timeout / 4, 0.5))
        self.idle_timeout = idle_timeout
        # Reads may wait as long as a first byte may; streams enforce the shorter idle limit themselves.
        self._timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout, sock_read=first_byte_timeout)

    def _session(self, base_url: str) -> aiohttp.ClientSession:
        session = self._sessions.get(base_url)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=30)
            # No cookie jar: the upstream's cookies are nobody's to send back, least of all another
            # tenant's request (and filtering a jar costs a few calls a request).
            session = aiohttp.ClientSession(
                base_url=None, connector=connector, timeout=self._timeout, cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent",), auto_decompress=True,
            )
            self._sessions[base_url] = session
        return session

    async def post(self, base_url: str, path: str, body: bytes, headers: dict[str, str]) -> aiohttp.ClientResponse:
        """POST and return once the response headers arrived (bounded by the first-byte timeout)."""
        task = self._deadlines.start(self._first_byte_timeout)
        try:
            return await self._session(base_url).post(base_url + path, data=body, headers=headers)
        except asyncio.CancelledError:
            self._deadlines.expired(task)
            raise
        finally:
            self._deadlines.stop(task)

    async def get_status(self, base_url: str, path: str, headers: dict[str, str]) -> int | None:
        """The status of a GET (a credential probe), or None when upstream could not be reached."""
        try:
            async with asyncio.timeout(self._first_byte_timeout):
                async with self._session(base_url).get(base_url + path, headers=headers) as response:
                    await response.read()
                    return response.status
        except UPSTREAM_ERRORS:
            return None

    async def close(self) -> None:
        await asyncio.gather(*(session.close() for session in self._sessions.values()))
        self._sessions.clear()
