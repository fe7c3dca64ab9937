"""Page rendering: the Jinja2 environment (autoescaped), its filters, and the one `render` call."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse

if TYPE_CHECKING:
    from ccgate.http.services import Services

TEMPLATES = Path(__file__).parent / "templates"

# Success messages a redirect names with `?ok=`; only these texts are ever shown.
NOTICES = {
    "welcome": "Welcome! Create your first API key below.",
    "logged-out": "You are logged out.",
    "key-revoked": "The key is revoked; the gateway refuses it within a second.",
    "redeemed": "The code is redeemed; the credit is yours.",
    "password-changed": "Your password is changed, and every other session is logged out.",
    "granted": "Credit granted.",
    "user-changed": "The user is changed.",
    "account-added": "The upstream account is added.",
    "account-changed": "The upstream account is changed.",
    "model-changed": "The model is changed.",
    "settings-saved": "Settings saved.",
    "webhook-added": "The webhook is added.",
    "webhook-changed": "The webhook is changed.",
    "webhook-removed": "The webhook is removed, with its delivery log.",
    "alert-tested": "A test alert was sent to every enabled webhook; its outcome is in the delivery log below.",
}


def usd(micro: int | None) -> str:
    """Micro-dollars as dollars, with as many decimals as they need (at least two)."""
    if micro is None:
        return "–"
    text = f"{abs(micro) / 1_000_000:,.6f}".rstrip("0")
    whole, _, cents = text.partition(".")
    return f"{'-' if micro < 0 else ''}${whole}.{cents.ljust(2, '0')}"


def per_mtok(price_micro: int, markup_bp: int = 10_000) -> str:
    """A price per million tokens as the user pays it, markup included."""
    return usd(round(price_micro * markup_bp / 10_000))


def plain(micro: int) -> str:
    """Micro-dollars as a bare decimal number of dollars, for a form field."""
    return f"{micro / 1_000_000:.6f}".rstrip("0").rstrip(".")


def when(ms: int | None) -> str:
    if ms is None:
        return "never"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def count(value: int | float | None) -> str:
    return f"{value or 0:,}"


def percent(share: float | None) -> str:
    return "–" if share is None else f"{share:.0%}"


env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                  trim_blocks=True, lstrip_blocks=True)
env.filters.update(usd=usd, per_mtok=per_mtok, plain=plain, when=when, count=count, percent=percent)


def gateway_of(request: Request) -> Services:
    return request.app.state.gateway


def render(request: Request, template: str, *, status: int = 200, **context) -> HTMLResponse:
    """A page with what every page shows: the signed-in user, the CSRF token, and a notice or error.
    A page rendered for a refused form (request.state.error) answers 400."""
    session = getattr(request.state, "session", None)
    error = getattr(request.state, "error", None)
    html = env.get_template(template).render(
        path=request.url.path, session=session, user=session.user if session else None,
        csrf=getattr(request.state, "csrf", ""), error=error,
        notice=NOTICES.get(request.query_params.get("ok", "")),
        public_url=gateway_of(request).settings.public_url, **context,
    )
    return HTMLResponse(html, status_code=400 if error and status == 200 else status)


def done(path: str, notice: str) -> RedirectResponse:
    """After a form succeeded: to `path`, which shows the notice (post/redirect/get)."""
    return RedirectResponse(f"{path}?ok={notice}", 303)
