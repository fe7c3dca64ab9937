"""The operator console: overview, users, upstream accounts, models and prices, codes, settings.
Every change goes through the same Operations as the admin API and the CLI."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from ccgate.billing.price_edit import MULTIPLIERS, PER_USE_USD
from ccgate.http.web.charts import Series, bar_chart
from ccgate.http.web.forms import (
    FormError,
    number,
    optional_whole,
    read_form,
    secret,
    text,
)
from ccgate.http.web.render import done, gateway_of, plain, render
from ccgate.http.web.sessions import session_of
from ccgate.ops import (
    DEFAULT_BASE_URL,
    MODIFIERS,
    PRICE_COLUMNS,
    SIGNUP_MODES,
    WebSettings,
    usd_to_micro,
)

MAX_CODES_AT_ONCE = 100
CLEARABLE_MODIFIERS = ("long_context_threshold", "fast_input", "fast_output")  # an empty field removes these


def account_rows(accounts: list[dict], now_ms: int) -> list[dict]:
    """Upstream accounts with their state as the servers last recorded it: disabled, cooling down or healthy."""
    rows = []
    for account in accounts:
        cooling_ms = max((account["cooldown_until_ms"] or 0) - now_ms, 0)
        state = "disabled" if not account["enabled"] else "cooling down" if cooling_ms else "healthy"
        rows.append({**account, "state": state, "cooling_seconds": cooling_ms / 1000})
    return rows


def _now_ms() -> int:
    return int(time.time() * 1000)


async def overview_page(request: Request) -> Response:
    ops = gateway_of(request).ops
    overview = await ops.overview()
    this_minute = int(time.time() // 60)
    minutes = range(this_minute - 59, this_minute + 1)
    seen = {row["minute"]: row for row in overview.per_minute}
    errors = [int(seen[m]["errors"]) if m in seen else 0 for m in minutes]
    answered = [(seen[m]["requests"] if m in seen else 0) - failed for m, failed in zip(minutes, errors, strict=True)]
    labels = [datetime.fromtimestamp(m * 60, UTC).strftime("%H:%M") for m in minutes]
    chart = bar_chart("Requests per minute, last hour (UTC)", labels,
                      [Series("Answered", answered), Series("Errors", errors)])
    accounts = account_rows(await ops.list_accounts(), _now_ms())
    return render(request, "console_overview.html", title="Console", overview=overview, chart=chart,
                  last_minute=answered[-2] + errors[-2], hour_requests=sum(answered) + sum(errors),
                  hour_errors=sum(errors), unhealthy=[a for a in accounts if a["state"] != "healthy"],
                  account_count=len(accounts))


async def users_page(request: Request) -> Response:
    return render(request, "console_users.html", title="Users", users=await gateway_of(request).ops.users())


async def grant_credit(request: Request) -> Response:
    form = await read_form(request)
    await gateway_of(request).ops.grant_credit(text(form, "email"), number(form, "usd", "Amount", negative=True),
                                              text(form, "note") or None)
    return done("/console/users", "granted")


async def set_user_disabled(request: Request) -> Response:
    form = await read_form(request)
    email, disabled = text(form, "email"), text(form, "disabled") == "1"
    if disabled and email.lower() == session_of(request).user["email"]:
        raise FormError("you cannot disable yourself")
    await gateway_of(request).ops.set_user_disabled(email, disabled)
    return done("/console/users", "user-changed")


async def set_overdraft(request: Request) -> Response:
    form = await read_form(request)
    raw = text(form, "overdraft")
    overdraft = None if raw.lower() in ("", "default") else number(form, "overdraft", "Overdraft", negative=True)
    await gateway_of(request).ops.set_overdraft(text(form, "email"), overdraft)
    return done("/console/users", "user-changed")


async def accounts_page(request: Request) -> Response:
    accounts = account_rows(await gateway_of(request).ops.list_accounts(), _now_ms())
    return render(request, "console_accounts.html", title="Upstream accounts", accounts=accounts,
                  default_base_url=DEFAULT_BASE_URL)


async def add_account(request: Request) -> Response:
    form = await read_form(request)
    await gateway_of(request).ops.add_account(
        text(form, "name"), secret(form, "api_key").strip(),
        base_url=text(form, "base_url") or DEFAULT_BASE_URL,
        priority=optional_whole(form, "priority", "Priority") or 0,
        weight=optional_whole(form, "weight", "Weight") or 1)
    return done("/console/accounts", "account-added")


async def set_account_enabled(request: Request) -> Response:
    form = await read_form(request)
    await gateway_of(request).ops.set_account_enabled(text(form, "name"), text(form, "enabled") == "1",
                                                      "disabled by an operator in the console")
    return done("/console/accounts", "account-changed")


async def replace_account_key(request: Request) -> Response:
    form = await read_form(request)
    api_key = secret(form, "api_key").strip()
    if not api_key:
        raise FormError("enter the account's new API key")
    await gateway_of(request).ops.update_account(text(form, "name"), api_key=api_key)
    return done("/console/accounts", "account-changed")


MODIFIER_LABELS = {"long_context_threshold": "Long context above (input tokens)", "long_context_input": "input ×",
                   "long_context_output": "output ×", "fast_input": "Fast mode: input ×", "fast_output": "output ×",
                   "us_geo": "US-only ×", "batch": "Batch ×", "web_search_usd": "Web search $/use",
                   "web_fetch_usd": "Web fetch $/use"}


def modifier_inputs(model: dict) -> dict[str, str]:
    """A model's price modifiers as its form's fields show them: multipliers such as 1.1, dollars per use,
    a token count; empty when there is none (no fast mode, no long-context tier)."""
    shown: dict[str, str] = {}
    for name in MODIFIERS:
        value = model[MULTIPLIERS.get(name) or PER_USE_USD.get(name) or name]
        if value is None:
            shown[name] = ""
        elif name in MULTIPLIERS:
            shown[name] = f"{value / 10_000:g}"
        elif name in PER_USE_USD:
            shown[name] = plain(value)
        else:
            shown[name] = str(value)
    return shown


async def models_page(request: Request) -> Response:
    models = await gateway_of(request).ops.models()
    return render(request, "console_models.html", title="Models and prices", models=models,
                  price_columns=PRICE_COLUMNS, modifiers={model["id"]: modifier_inputs(model) for model in models},
                  modifier_labels=MODIFIER_LABELS)


def modifier_fields(form: FormData) -> dict[str, float | None]:
    """The price modifiers a model's form gives: an empty field leaves a modifier as it is, or removes
    fast mode or the long-context tier."""
    modifiers: dict[str, float | None] = {}
    for name in MODIFIERS:
        if name not in form:
            continue
        if text(form, name):
            modifiers[name] = number(form, name, name.replace("_", " "))
        elif name in CLEARABLE_MODIFIERS:
            modifiers[name] = None
    return modifiers


async def change_model(request: Request) -> Response:
    form = await read_form(request)
    prices = {column: number(form, column, column.replace("_", " ")) for column in PRICE_COLUMNS}
    await gateway_of(request).ops.update_model(text(form, "model_id"), prices_usd=prices,
                                               markup=number(form, "markup", "Markup"),
                                               enabled=form.get("enabled") == "on", modifiers=modifier_fields(form))
    return done("/console/models", "model-changed")


async def codes_page(request: Request, *, new_codes: list[str] | None = None) -> Response:
    ops = gateway_of(request).ops
    emails = {user["id"]: user["email"] for user in await ops.users()}
    return render(request, "console_codes.html", title="Redemption codes", codes=await ops.codes(), emails=emails,
                  new_codes=new_codes)


async def create_codes(request: Request) -> Response:
    form = await read_form(request)
    count = optional_whole(form, "count", "How many") or 1
    if count > MAX_CODES_AT_ONCE:
        raise FormError(f"make at most {MAX_CODES_AT_ONCE} codes at a time here (the CLI makes more)")
    codes = await gateway_of(request).ops.create_codes(number(form, "usd", "Worth"), count,
                                                      text(form, "note") or None)
    return await codes_page(request, new_codes=codes)


async def settings_page(request: Request) -> Response:
    return render(request, "console_settings.html", title="Settings", modes=SIGNUP_MODES,
                  settings=await gateway_of(request).ops.web_settings())


async def save_settings(request: Request) -> Response:
    form = await read_form(request)
    await gateway_of(request).ops.update_web_settings(WebSettings(
        signup_mode=text(form, "signup_mode"), invite_code=text(form, "invite_code") or None,
        starting_credit_micro=usd_to_micro(number(form, "starting_credit", "Starting credit")),
        max_rpm=optional_whole(form, "max_rpm", "Most requests per minute") or None,
        max_concurrency=optional_whole(form, "max_concurrency", "Most concurrent requests") or None,
        max_token_budget=optional_whole(form, "max_token_budget", "Largest token budget") or None,
    ))
    return done("/console/settings", "settings-saved")
