"""JSON answers for API paths no route serves: 405 for a known path with the wrong method, 404 otherwise,
in the dialect the path speaks (OpenAI's shape for chat completions, Anthropic's for everything else)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route

from ccgate.dialects.errors import anthropic_error_body, openai_error_body
from ccgate.ids import request_id

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
# OpenAI-style paths a client reaches when its base URL lacks /v1.
MISSING_V1_PATHS = ("/chat/completions", "/completions", "/embeddings", "/models", "/messages",
                    "/messages/count_tokens")


def fallback_routes() -> list[BaseRoute]:
    """Routes to append after every API route and before the web pages."""
    paths = ["/v1/{rest:path}", *MISSING_V1_PATHS]
    return [Route(path, api_fallback, methods=ALL_METHODS) for path in paths]


def _allowed_methods(request: Request) -> list[str]:
    """The methods other routes accept for this path (empty if none serves it)."""
    allowed: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.endpoint is not api_fallback:
            match, _ = route.matches({**request.scope, "method": "\0"})
            if match is Match.PARTIAL and route.methods:
                allowed |= route.methods
    return sorted(allowed)


async def api_fallback(request: Request) -> Response:
    """405 with Allow for a wrong method, else 404; both as JSON in the path's dialect."""
    allowed = _allowed_methods(request)
    path = request.url.path
    if allowed:
        status, message = 405, f"Method {request.method} is not allowed for {path}; use {', '.join(allowed)}."
    elif not path.startswith("/v1/"):
        status, message = 404, f"Not found: {path}. API routes start with /v1 (did you mean /v1{path}?)."
    else:
        status, message = 404, f"Not found: {path}."
    ident = request_id()
    error_type = "not_found_error" if status == 404 else "invalid_request_error"
    if path.endswith("/chat/completions") or path.endswith("/completions") or path.endswith("/embeddings"):
        body = openai_error_body(error_type, message, None)
    else:
        body = anthropic_error_body(error_type, message, ident)
    headers = {"request-id": ident, "x-request-id": ident}
    if allowed:
        headers["allow"] = ", ".join(allowed)
    return Response(body, status, headers=headers, media_type="application/json")
