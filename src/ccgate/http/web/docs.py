"""The public docs page: the seed docs as one page, filled in with this gateway's facts."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ccgate.billing.catalog import Catalog
from ccgate.http.web.render import gateway_of, render
from ccgate.http.web.sessions import current_session

EXAMPLE_MODEL = "claude-sonnet-4-6"


def example_model(catalog: Catalog) -> str:
    """The model the examples name: the seed docs' own, unless this gateway does not serve it."""
    return EXAMPLE_MODEL if catalog.resolve(EXAMPLE_MODEL) or not catalog.models else catalog.models[0].id


async def docs_page(request: Request) -> Response:
    """Anyone may read it; a signed-in user also sees their own keys' prefixes in it."""
    gateway = gateway_of(request)
    session = await current_session(request)
    request.state.session, request.state.csrf = session, session.csrf if session else ""
    keys = []
    if session:
        keys = [key for key in await gateway.ops.list_keys(session.user["email"]) if not key["revoked_ms"]]
    return render(request, "docs.html", title="Docs", models=gateway.catalog.models,
                  example_model=example_model(gateway.catalog), keys=keys,
                  key_hint=keys[-1]["display"] if keys else gateway.settings.key_prefix + "...",
                  key_prefix=gateway.settings.key_prefix,
                  signup_mode=(await gateway.ops.web_settings()).signup_mode)
