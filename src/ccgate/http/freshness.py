"""Read-your-writes: a configuration change committed before a request arrived is in force for it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Receive, Scope, Send


class CatchUp:
    """ASGI middleware: when `changed()` says an admin change was committed since this process last
    loaded the configuration (store.change_marker: an inotify flag, or one `stat`), `catch_up()` loads
    it before the request is served.  In steady state it adds no coroutine to the request: it hands
    back the inner app's own awaitable, which the server awaits."""

    def __init__(self, app: ASGIApp, *, changed: Callable[[], bool], catch_up: Callable[[], Awaitable[None]]) -> None:
        self.app = app
        self.changed = changed
        self.catch_up = catch_up

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] == "http" and self.changed():
            return self._caught_up(scope, receive, send)
        return self.app(scope, receive, send)

    async def _caught_up(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.catch_up()
        await self.app(scope, receive, send)
