"""Who is asking: session cookies, CSRF tokens, and the wrappers that guard each page.

A signed-in browser carries an HttpOnly, SameSite=Lax cookie (Secure, and `__Host-` named, when
the public URL is https); the server keeps only its HMAC.  Every POST carries a CSRF token: the
session's own once signed in, and before that one bound to a cookie of its own (double submit).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ccgate.http.web.forms import FormError, read_form
from ccgate.http.web.render import gateway_of, render
from ccgate.ops import SESSION_MS, OperationError, Session

Endpoint = Callable[[Request], Awaitable[Response]]

SESSION_COOKIE = "ccgate_session"
FORM_COOKIE = "ccgate_form"


def _secure(request: Request) -> bool:
    return gateway_of(request).settings.public_url.startswith("https://")


def cookie_name(base: str, secure: bool) -> str:
    """`__Host-` cookies are Secure, host-only and path /: no sibling subdomain can plant one."""
    return f"__Host-{base}" if secure else base


def set_cookie(response: Response, request: Request, base: str, value: str, max_age: int) -> None:
    secure = _secure(request)
    response.set_cookie(cookie_name(base, secure), value, max_age=max_age, path="/", secure=secure,
                        httponly=True, samesite="lax")


def clear_cookie(response: Response, request: Request, base: str) -> None:
    secure = _secure(request)
    response.delete_cookie(cookie_name(base, secure), path="/", secure=secure, httponly=True, samesite="lax")


def cookie(request: Request, base: str) -> str | None:
    return request.cookies.get(cookie_name(base, _secure(request)))


async def current_session(request: Request) -> Session | None:
    token = cookie(request, SESSION_COOKIE)
    return await gateway_of(request).ops.session(token) if token else None


async def start_session(request: Request, user_id: int, to: str) -> Response:
    """Sign a user in (ending the session this browser had) and go on to `to`."""
    ops = gateway_of(request).ops
    if old := cookie(request, SESSION_COOKIE):
        await ops.close_session(old)
    response = RedirectResponse(to, 303)
    set_cookie(response, request, SESSION_COOKIE, await ops.open_session(user_id), SESSION_MS // 1000)
    return response


def session_of(request: Request) -> Session:
    """The session `signed_in` found for this request."""
    return request.state.session


async def _csrf_ok(request: Request) -> bool:
    sent = (await read_form(request)).get("csrf")
    return isinstance(sent, str) and hmac.compare_digest(sent.encode(), request.state.csrf.encode())


def _forged(request: Request) -> Response:
    return render(request, "message.html", status=403, title="Form refused",
                  message="This form has expired or did not come from this site. Go back, reload the page "
                          "and try again.")


def signed_in(handler: Endpoint, *, admin: bool = False) -> Endpoint:
    """Only for a signed-in user (an admin, if `admin`); a POST must carry the session's CSRF token."""
    async def endpoint(request: Request) -> Response:
        session = await current_session(request)
        if session is None:
            return RedirectResponse("/login?" + urlencode({"next": request.url.path}), 303)
        request.state.session, request.state.csrf = session, session.csrf
        if admin and not session.user["is_admin"]:
            return render(request, "message.html", status=403, title="Operators only",
                          message="The console is for the gateway's operators.")
        if request.method == "POST" and not await _csrf_ok(request):
            return _forged(request)
        return await handler(request)

    return endpoint


def anonymous(handler: Endpoint) -> Endpoint:
    """For forms before sign-in: a CSRF token bound to a cookie of its own, which a POST must match."""
    async def endpoint(request: Request) -> Response:
        form_cookie = cookie(request, FORM_COOKIE)
        fresh = form_cookie is None
        if form_cookie is None:
            form_cookie = secrets.token_urlsafe(32)
        request.state.csrf = gateway_of(request).box.hash_key("csrf " + form_cookie)
        if request.method == "POST" and (fresh or not await _csrf_ok(request)):
            return _forged(request)
        response = await handler(request)
        if fresh:
            set_cookie(response, request, FORM_COOKIE, form_cookie, SESSION_MS // 1000)
        return response

    return endpoint


def form_action(handler: Endpoint, *, on_error: Endpoint) -> Endpoint:
    """A POST whose refusal (a FormError or OperationError) shows `on_error`'s page with the message."""
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except (FormError, OperationError) as error:
            request.state.error = str(error)
            return await on_error(request)

    return endpoint
