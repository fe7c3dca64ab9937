"""What every API route does around its own work: a Call in the route's dialect, and any GatewayError
answered in that dialect."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from ccgate.call import Call, Dialect
from ccgate.errors import GatewayError

if TYPE_CHECKING:
    from ccgate.app import Gateway

Handler = Callable[[Request, "Gateway", Call], Awaitable[Response]]


def endpoint(dialect: Callable[[], Dialect], *, recorded: bool = False) -> Callable[[Handler], Callable]:
    """Wrap a handler: it gets the gateway and a fresh Call; a GatewayError it raises becomes the error
    response of the dialect, recorded in the usage ledger when the route is a billed one."""

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(handler)
        async def route(request: Request) -> Response:
            gateway = request.app.state.gateway
            call = Call(dialect())
            try:
                return await handler(request, gateway, call)
            except GatewayError as error:
                return gateway.error_response(call, error, record=recorded)

        return route

    return wrap
