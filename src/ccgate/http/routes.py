"""The route table: every /v1 route, the admin API, health checks, metrics and the dashboard."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ccgate.http import chat, messages, meta, responses
from ccgate.http.endpoint import Endpoint
from ccgate.http.fallback import fallback_routes
from ccgate.http.freshness import CatchUp
from ccgate.http.services import Services
from ccgate.http.web import create_web_app
from ccgate.obs import metrics

V1 = [
    Route("/messages", messages.create_message, methods=["POST"]),
    Route("/messages/count_tokens", messages.count_tokens, methods=["POST"]),
    Route("/chat/completions", chat.chat_completions, methods=["POST"]),
    Route("/responses", responses.create_response, methods=["POST"]),
    Route("/responses/{response_id}", responses.get_response, methods=["GET"]),
    Route("/responses/{response_id}", responses.delete_response, methods=["DELETE"]),
    Route("/responses/{response_id}/input_items", responses.list_input_items, methods=["GET"]),
    Route("/models", meta.list_models, methods=["GET"]),
    Route("/models/{model_id:path}", meta.get_model, methods=["GET"]),
    Route("/usage/{request_id}", meta.get_usage, methods=["GET"]),
    Route("/key-status", meta.key_status, methods=["GET"]),
    Route("/credit/redeem", meta.redeem_code, methods=["POST"]),
]


def routes(gateway: Services) -> list[BaseRoute]:
    """Every /v1 route (also under /v1/v1, for SDKs given a base URL that already ends in /v1),
    the admin API, the health checks, and last the web dashboard (docs, sign-up, dashboard, console)."""
    table: list[BaseRoute] = [Route(prefix + route.path, route.endpoint, methods=route.methods)
                              for prefix in ("/v1", "/v1/v1") for route in V1]
    return table + [
        Mount("/admin/api", app=BuiltOnFirstUse(lambda: admin_api(gateway))),
        Route("/healthz", meta.healthz, methods=["GET"]),
        Route("/readyz", meta.readyz, methods=["GET"]),
        Route("/metrics", metrics_page, methods=["GET"]),
        *fallback_routes(),
        Mount("", app=create_web_app(gateway)),
    ]


class GatewayApp(Starlette):
    """The gateway's ASGI app: Starlette, with a shortcut for the API's POST routes.

    A POST to one of them (/v1/messages, /v1/chat/completions ...) goes straight to its Endpoint,
    past Starlette's error and exception middleware, its router and its route matching: a dozen
    calls and frames of every API request.  What that way did for these routes still happens: the
    read-your-writes check (CatchUp) runs first, and an exception nothing handled reaches uvicorn,
    which logs it and answers 500 as Starlette's error middleware would have.  Everything else
    (other paths and methods, the lifespan) takes Starlette's way."""

    def __init__(self, gateway: Services, *, changed: Callable[[], bool], catch_up: Callable[[], Awaitable[None]],
                 lifespan: Callable[[Starlette], AbstractAsyncContextManager[None]]) -> None:
        super().__init__(routes=routes(gateway), lifespan=lifespan,
                         middleware=[Middleware(CatchUp, changed=changed, catch_up=catch_up)])
        self.state.gateway = gateway
        self.shortcuts = {route.path: CatchUp(route.endpoint, changed=changed, catch_up=catch_up)
                          for route in self.routes
                          if isinstance(route, Route) and isinstance(route.endpoint, Endpoint)
                          and route.methods == {"POST"}}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            shortcut = self.shortcuts.get(scope["path"])
            if shortcut is not None:
                scope["app"] = self
                await shortcut(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def admin_api(gateway: Services) -> ASGIApp:
    from ccgate.http.admin import create_admin_api

    admin = create_admin_api()
    admin.state.gateway = gateway
    return admin


class BuiltOnFirstUse:
    """An ASGI app made when its first request comes: the admin API's FastAPI and pydantic (some
    14 MB) stay out of a process that is never asked for it."""

    def __init__(self, build: Callable[[], ASGIApp]) -> None:
        self._build = build
        self._app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            self._app = self._build()
        await self._app(scope, receive, send)


async def metrics_page(request: Request) -> Response:
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
