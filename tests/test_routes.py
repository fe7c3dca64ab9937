"""The gateway's ASGI app: the API's POST routes go straight to their endpoint, after the
read-your-writes check; everything else goes Starlette's way."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import orjson
from starlette.applications import Starlette
from starlette.routing import Route

from ccgate.config import Settings
from ccgate.http.endpoint import Endpoint
from ccgate.http.routes import GatewayApp
from fakes import FakeServices, account, answer, call_asgi, core, key, message

BODY = b'{"model":"claude-haiku-4-5","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}'
HEADERS = {"x-api-key": "cc_user_x", "content-type": "application/json"}


@contextlib.asynccontextmanager
async def no_lifespan(app: Starlette) -> AsyncIterator[None]:
    yield


def gateway_app(events: list[str], changed: bool = False) -> tuple[GatewayApp, FakeServices]:
    services = FakeServices(core(accounts=1), {"cc_user_x": key()})
    services.settings = Settings.from_env()  # type: ignore[assignment]  # the web pages read more of them
    services.redis = None  # type: ignore[attr-defined]

    async def catch_up() -> None:
        events.append("caught up")

    return GatewayApp(services, changed=lambda: changed, catch_up=catch_up, lifespan=no_lifespan), services


def test_every_api_post_route_and_only_those_has_a_shortcut() -> None:
    app, _ = gateway_app([])
    posts = {route.path for route in app.routes
             if isinstance(route, Route) and isinstance(route.endpoint, Endpoint) and route.methods == {"POST"}}
    assert set(app.shortcuts) == posts
    assert {"/v1/messages", "/v1/chat/completions", "/v1/responses", "/v1/v1/messages"} <= posts


async def test_a_shortcut_request_is_answered_after_the_read_your_writes_check() -> None:
    events: list[str] = []
    app, services = gateway_app(events, changed=True)
    services.core.upstream.queue(account(1).base_url, answer(payload=message("Hi")))
    exchange = await call_asgi(app, path="/v1/messages", body=BODY, headers=HEADERS)
    assert exchange.status == 200 and exchange.json()["content"][0]["text"] == "Hi"
    assert events == ["caught up"]
    assert [row.request_id for row in services.core.writer.rows] == [exchange.headers["request-id"]]
    assert app.middleware_stack is None, "Starlette's middleware and router were never built: the shortcut served it"


async def test_other_methods_take_starlettes_way_and_answer_in_the_dialect() -> None:
    app, _ = gateway_app([])
    exchange = await call_asgi(app, method="GET", path="/v1/messages", headers=HEADERS)
    assert exchange.status == 405
    assert orjson.loads(exchange.body)["type"] == "error"
    assert app.middleware_stack is not None, "Starlette served it"
