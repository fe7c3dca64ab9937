"""Sign up, log in, log out: the pages before the dashboard."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ccgate.gate.durations import describe_wait
from ccgate.http.web.forms import FormError, read_form, secret, text
from ccgate.http.web.render import gateway_of, render
from ccgate.http.web.sessions import SESSION_COOKIE, clear_cookie, cookie, start_session

HOME = "/dashboard/keys"


def safe_next(path: str) -> str:
    """Where to go after logging in: a path on this site, never another site."""
    return path if path.startswith("/") and not path.startswith(("//", "/\\")) else HOME


async def _typed(request: Request, name: str) -> str:
    """What the user typed into a field, when the page is shown again after a refusal."""
    return text(await read_form(request), name) if request.method == "POST" else ""


async def signup_page(request: Request) -> Response:
    settings = await gateway_of(request).ops.web_settings()
    return render(request, "signup.html", title="Sign up", mode=settings.signup_mode,
                  email=await _typed(request, "email"), invite=request.query_params.get("invite", ""))


async def signup(request: Request) -> Response:
    form = await read_form(request)
    if secret(form, "password") != secret(form, "confirm"):
        raise FormError("the two passwords differ")
    user_id = await gateway_of(request).ops.sign_up(text(form, "email"), secret(form, "password"),
                                                    text(form, "invite"))
    return await start_session(request, user_id, HOME + "?ok=welcome")


async def login_page(request: Request, *, status: int = 200) -> Response:
    next_path = await _typed(request, "next") or request.query_params.get("next", "")
    return render(request, "login.html", status=status, title="Log in", email=await _typed(request, "email"),
                  next_path=safe_next(next_path))


async def login(request: Request) -> Response:
    form = await read_form(request)
    email, address = text(form, "email"), request.client.host if request.client else ""
    throttle = request.app.state.throttle
    if (wait := throttle.retry_after(email, address)) is not None:
        request.state.error = f"Too many failed attempts; try again in {describe_wait(wait)}."
        return await login_page(request, status=429)
    user = await gateway_of(request).ops.verify_password(email, secret(form, "password"))
    if user is None:
        throttle.failed(email, address)
        raise FormError("wrong email or password")
    if user["disabled"]:
        raise FormError("this account is disabled; ask the operator")
    throttle.succeeded(email, address)
    return await start_session(request, user["id"], safe_next(text(form, "next")))


async def logout(request: Request) -> Response:
    if (token := cookie(request, SESSION_COOKIE)) is not None:
        await gateway_of(request).ops.close_session(token)
    response = RedirectResponse("/login?ok=logged-out", 303)
    clear_cookie(response, request, SESSION_COOKIE)
    return response
