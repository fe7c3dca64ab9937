"""Sign up, log in, log out: the pages before the dashboard."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ccgate.gate.durations import describe_wait
from ccgate.http.web.client_address import client_address
from ccgate.http.web.forms import FormError, read_form, secret, text
from ccgate.http.web.render import gateway_of, render
from ccgate.http.web.sessions import SESSION_COOKIE, clear_cookie, cookie, start_session
from ccgate.ops import OperationError
from ccgate.passwords import password_problem

HOME = "/dashboard/keys"
SIGNUP_REFUSED = "could not sign up with this email and password; if you have an account here, log in"


def safe_next(path: str) -> str:
    """Where to go after logging in: a path on this site, never another site."""
    return path if path.startswith("/") and not path.startswith(("//", "/\\")) else HOME


async def _typed(request: Request, name: str) -> str:
    """What the user typed into a field, when the page is shown again after a refusal."""
    return text(await read_form(request), name) if request.method == "POST" else ""


async def signup_page(request: Request, *, status: int = 200) -> Response:
    settings = await gateway_of(request).ops.web_settings()
    return render(request, "signup.html", status=status, title="Sign up", mode=settings.signup_mode,
                  email=await _typed(request, "email"), invite=request.query_params.get("invite", ""))


async def signup(request: Request) -> Response:
    form = await read_form(request)
    email, password, throttle = text(form, "email"), secret(form, "password"), request.app.state.throttle
    address = address_of(request)
    if (wait := await throttle.signup_wait(address)) is not None:
        request.state.error = f"Too many sign-ups from your address; try again in {describe_wait(wait)}."
        return await signup_page(request, status=429)
    await throttle.signup_attempted(address)
    if password != secret(form, "confirm"):
        raise FormError("the two passwords differ")
    if problem := password_problem(password, email):
        raise FormError(problem)
    ops = gateway_of(request).ops
    try:
        user_id = await ops.sign_up(email, password, text(form, "invite"))
    except OperationError as error:
        if "exists already" not in str(error):
            raise
        # The owner of the email, with their password, is simply signed in; anyone else gets the
        # answer any refused sign-up gets, which does not say that the email is known.
        user = await ops.verify_password(email, password)
        if user is None or user["disabled"]:
            raise FormError(SIGNUP_REFUSED) from None
        user_id = user["id"]
    return await start_session(request, user_id, HOME + "?ok=welcome")


async def login_page(request: Request, *, status: int = 200) -> Response:
    next_path = await _typed(request, "next") or request.query_params.get("next", "")
    return render(request, "login.html", status=status, title="Log in", email=await _typed(request, "email"),
                  next_path=safe_next(next_path))


async def login(request: Request) -> Response:
    form = await read_form(request)
    email, address, throttle = text(form, "email"), address_of(request), request.app.state.throttle
    if (wait := await throttle.login_wait(email, address)) is not None:
        request.state.error = f"Too many failed attempts; try again in {describe_wait(wait)}."
        return await login_page(request, status=429)
    user = await gateway_of(request).ops.verify_password(email, secret(form, "password"))
    if user is None:
        await throttle.login_failed(email, address)
        raise FormError("wrong email or password")
    if user["disabled"]:
        raise FormError("this account is disabled; ask the operator")
    await throttle.login_succeeded(email)
    return await start_session(request, user["id"], safe_next(text(form, "next")))


def address_of(request: Request) -> str:
    """The client's address, through the operator's trusted proxies only."""
    return client_address(request, gateway_of(request).settings.trusted_proxies)


async def logout(request: Request) -> Response:
    if (token := cookie(request, SESSION_COOKIE)) is not None:
        await gateway_of(request).ops.close_session(token)
    response = RedirectResponse("/login?ok=logged-out", 303)
    clear_cookie(response, request, SESSION_COOKIE)
    return response
