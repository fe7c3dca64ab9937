"""The admin API's OpenAPI schema and Swagger page, for admins only, with every asset served by ccgate.

The schema and the page answer an admin key (`x-api-key` or Bearer, as the API itself) or the
session of an admin signed in to the dashboard, so an operator can open the page in a browser.
Swagger UI's files come from the `swagger-ui-bundle` package, not a CDN.
"""

from __future__ import annotations

from urllib.parse import urlencode

import swagger_ui_bundle  # type: ignore[import-untyped]
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ccgate.errors import GatewayError
from ccgate.http.web.sessions import current_session

ASSETS = "/docs-assets"


async def _is_admin(request: Request) -> bool:
    """An admin key, or an admin's dashboard session."""
    try:
        return bool(request.app.state.gateway.authenticate(request.headers).is_admin)
    except GatewayError:
        session = await current_session(request)
        return session is not None and bool(session.user["is_admin"])


def add_admin_docs(api: FastAPI, mounted_at: str) -> None:
    """Serve /openapi.json and /docs on `api` (create it with openapi_url and docs_url None)."""

    async def openapi(request: Request) -> Response:
        if not await _is_admin(request):
            return JSONResponse({"detail": "the admin API's schema needs an admin key"}, status_code=401)
        return JSONResponse(api.openapi())

    async def docs(request: Request) -> Response:
        if not await _is_admin(request):
            return RedirectResponse("/login?" + urlencode({"next": mounted_at + "/docs"}), 303)
        return get_swagger_ui_html(
            openapi_url=mounted_at + "/openapi.json", title="ccgate admin API",
            swagger_js_url=f"{mounted_at}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{mounted_at}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{mounted_at}{ASSETS}/favicon-32x32.png")

    # Plain routes: the API's own dependency (an admin key) would refuse a signed-in browser.
    api.router.routes.extend([
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
        Mount(ASSETS, app=StaticFiles(directory=swagger_ui_bundle.swagger_ui_path)),
    ])
