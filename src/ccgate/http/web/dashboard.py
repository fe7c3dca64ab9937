"""The user's own pages: API keys (shown once), credit, and account."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ccgate.gate.admission import Defaults
from ccgate.gate.durations import describe_window
from ccgate.http.web.docs import example_model
from ccgate.http.web.forms import FormError, expiry, optional_whole, read_form, secret, text
from ccgate.http.web.render import done, gateway_of, render
from ccgate.http.web.sessions import session_of, start_session
from ccgate.ops import KeyLimits, NewKey
from ccgate.passwords import password_problem


def limits_in_force(key: dict, defaults: Defaults) -> dict:
    """A key's limits as admission applies them: its own, else the operator's defaults (0: unlimited)."""
    def pick(own: int | None, default: int) -> int:
        return default if own is None else own

    return {
        "rpm": pick(key["rpm"], defaults.rpm), "concurrency": pick(key["concurrency"], defaults.concurrency),
        "token_budget": pick(key["token_budget"], defaults.token_budget),
        "window": describe_window(key["window_seconds"] or defaults.window_seconds),
    }


async def keys_page(request: Request, *, new_key: NewKey | None = None) -> Response:
    gateway, user = gateway_of(request), session_of(request).user
    keys = sorted(await gateway.ops.list_keys(user["email"]),
                  key=lambda key: (key["revoked_ms"] is not None, -key["created_ms"]))
    for key in keys:
        key["limits"] = limits_in_force(key, gateway.gate.defaults)
    return render(request, "keys.html", title="API keys", keys=keys, new_key=new_key,
                  caps=await gateway.ops.web_settings(), models=[model.id for model in gateway.catalog.models],
                  example_model=example_model(gateway.catalog))


async def create_key(request: Request) -> Response:
    form = await read_form(request)
    limits = KeyLimits(
        rpm=optional_whole(form, "rpm", "Requests per minute"),
        concurrency=optional_whole(form, "concurrency", "Concurrent requests"),
        token_budget=optional_whole(form, "token_budget", "Token budget"),
        models=[model for model in form.getlist("models") if isinstance(model, str)] or None,
        expires=expiry(form, "expires", "Expires"),
    )
    key = await gateway_of(request).ops.create_user_key(session_of(request).user["email"], name=text(form, "name"),
                                                        limits=limits)
    return await keys_page(request, new_key=key)


async def revoke_key(request: Request) -> Response:
    """Revoke one of the user's own keys; any other key id is answered as unknown."""
    ops, key_id = gateway_of(request).ops, text(await read_form(request), "key_id")
    await ops.key_owned_by(key_id, session_of(request).user["id"])
    await ops.revoke_key(key_id)
    return done("/dashboard/keys", "key-revoked")


async def credit_page(request: Request) -> Response:
    user = session_of(request).user
    return render(request, "credit.html", title="Credit", balance=user["balance_micro"],
                  ledger=await gateway_of(request).ops.ledger(user["email"]))


async def redeem(request: Request) -> Response:
    code = text(await read_form(request), "code")
    if not code:
        raise FormError("enter the code you were given")
    await gateway_of(request).ops.redeem_code(session_of(request).user["id"], code)
    return done("/dashboard/credit", "redeemed")


async def account_page(request: Request) -> Response:
    return render(request, "account.html", title="Account")


async def change_password(request: Request) -> Response:
    """A new password ends every session; this browser gets a fresh one."""
    form, user = await read_form(request), session_of(request).user
    if secret(form, "new") != secret(form, "confirm"):
        raise FormError("the two new passwords differ")
    if problem := password_problem(secret(form, "new"), user["email"]):
        raise FormError(problem)
    await gateway_of(request).ops.change_password(user["email"], secret(form, "current"), secret(form, "new"))
    return await start_session(request, user["id"], "/dashboard/account?ok=password-changed")
