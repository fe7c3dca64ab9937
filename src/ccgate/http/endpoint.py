"""What every API route does around its own work: a Call in the route's dialect, and any GatewayError
answered in that dialect (and recorded, for a billed route)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ccgate.billing.prices import ModelPrice
from ccgate.dialects.dialect import Dialect
from ccgate.dialects.errors import TranslationError
from ccgate.errors import GatewayError
from ccgate.http.errors import encode_error
from ccgate.http.services import Services, services
from ccgate.pipeline.context import Call
from ccgate.relay.stream import StreamRelay

Handler = Callable[[Request, Services, Call], Awaitable[ASGIApp]]


def error_response(call: Call, error: GatewayError) -> Response:
    """The error in the caller's dialect, with the request's id headers."""
    call.status, call.error_type = error.status, error.error_type
    return Response(encode_error(call.dialect.name, error, call.request_id), error.status,
                    headers=call.id_headers() | error.headers(), media_type="application/json")


def failed(gateway: Services, call: Call, error: GatewayError, recorded: bool) -> Response:
    if error.status == 401:
        call.refusal = "auth"
    response = error_response(call, error)
    if recorded:
        gateway.pipeline.record_refusal(call)
    return response


def endpoint(dialect: Callable[[], Dialect], *, recorded: bool = False,
             route: str = "") -> Callable[[Handler], Endpoint]:
    """Wrap a handler: it gets the services and a fresh Call; a GatewayError (or a request the dialect
    cannot translate) becomes the dialect's error response, recorded in the usage ledger when the
    route is a billed one.  A named `route` is observed (metrics, access log, trace) when it ends:
    here, or, for a stream, when the relay is over."""

    def wrap(handler: Handler) -> Endpoint:
        return Endpoint(handler, dialect, recorded, route)

    return wrap


class Endpoint:
    """An API route as a plain ASGI app: Starlette runs it as it is, without the request/response
    wrappers it puts around a function (a few calls a request, on every API request)."""

    def __init__(self, handler: Handler, dialect: Callable[[], Dialect], recorded: bool, route: str) -> None:
        self.handler, self.dialect, self.recorded, self.route = handler, dialect, recorded, route
        self.__name__ = handler.__name__  # the route's name, for Starlette
        self.__doc__ = handler.__doc__
        self._app: object = None  # the app last served, and its services (found once, not per request)
        self._services: Services | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        if scope["app"] is not self._app:
            self._app, self._services = scope["app"], services(request)
        gateway = self._services
        assert gateway is not None
        call = Call(self.dialect(), route=self.route)
        try:
            response = await self.handler(request, gateway, call)
        except TranslationError as error:
            response = failed(gateway, call, GatewayError(400, error.message), self.recorded)
        except GatewayError as error:
            response = failed(gateway, call, error, self.recorded)
        if self.route and not isinstance(response, StreamRelay):
            gateway.pipeline.finished(call)
        await response(scope, receive, send)


def resolve_model(gateway: Services, name: str) -> ModelPrice:
    """The catalog's model of that name or alias, or a 404."""
    model = gateway.catalog.resolve(name)
    if model is None:
        raise GatewayError(404, f"model: {name}")
    return model
