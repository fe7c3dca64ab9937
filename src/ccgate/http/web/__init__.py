"""The dashboard the gateway serves itself: docs, sign-up and login, the user's pages, the console.

Server-rendered pages, one stylesheet and one small script; it is mounted after every /v1 route
and adds nothing to their path.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ccgate.http.web import auth, console, console_alerts, console_reports, dashboard, usage
from ccgate.http.web.docs import docs_page
from ccgate.http.web.headers import SecurityHeaders
from ccgate.http.web.sessions import Endpoint, anonymous, form_action, signed_in
from ccgate.http.web.throttle import (
    LOGIN_PER_ADDRESS,
    SIGNUP_PER_ADDRESS,
    LoginThrottle,
    MemoryAttempts,
    RedisAttempts,
)

if TYPE_CHECKING:
    from ccgate.http.services import Services

STATIC = Path(__file__).parent / "static"


def redirect(to: str) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        return RedirectResponse(to, 302)

    return endpoint


def _console(path: str, page: Endpoint, actions: dict[str, Endpoint]) -> list[Route]:
    """A console page and its forms (sub-path -> handler), each refusal shown on the page."""
    routes = [Route(path, signed_in(page, admin=True), methods=["GET"])]
    for sub_path, action in actions.items():
        routes.append(Route(path + sub_path, signed_in(form_action(action, on_error=page), admin=True),
                            methods=["POST"]))
    return routes


def create_web_app(gateway: Services) -> Starlette:
    pages = [
        Route("/", redirect("/docs"), methods=["GET"]),
        Route("/docs", docs_page, methods=["GET"]),
        Route("/signup", anonymous(auth.signup_page), methods=["GET"]),
        Route("/signup", anonymous(form_action(auth.signup, on_error=auth.signup_page)), methods=["POST"]),
        Route("/login", anonymous(auth.login_page), methods=["GET"]),
        Route("/login", anonymous(form_action(auth.login, on_error=auth.login_page)), methods=["POST"]),
        Route("/logout", signed_in(auth.logout), methods=["POST"]),
        Route("/dashboard", redirect("/dashboard/keys"), methods=["GET"]),
        Route("/dashboard/keys", signed_in(dashboard.keys_page), methods=["GET"]),
        Route("/dashboard/keys", signed_in(form_action(dashboard.create_key, on_error=dashboard.keys_page)),
              methods=["POST"]),
        Route("/dashboard/keys/revoke", signed_in(form_action(dashboard.revoke_key, on_error=dashboard.keys_page)),
              methods=["POST"]),
        Route("/dashboard/usage", signed_in(usage.usage_page), methods=["GET"]),
        Route("/dashboard/usage.csv", signed_in(usage.usage_csv), methods=["GET"]),
        Route("/dashboard/credit", signed_in(dashboard.credit_page), methods=["GET"]),
        Route("/dashboard/credit/redeem", signed_in(form_action(dashboard.redeem, on_error=dashboard.credit_page)),
              methods=["POST"]),
        Route("/dashboard/account", signed_in(dashboard.account_page), methods=["GET"]),
        Route("/dashboard/account/password",
              signed_in(form_action(dashboard.change_password, on_error=dashboard.account_page)), methods=["POST"]),
        *_console("/console", console.overview_page, {}),
        *_console("/console/users", console.users_page,
                  {"/credit": console.grant_credit, "/disabled": console.set_user_disabled,
                   "/overdraft": console.set_overdraft}),
        *_console("/console/accounts", console.accounts_page,
                  {"": console.add_account, "/enabled": console.set_account_enabled,
                   "/key": console.replace_account_key}),
        *_console("/console/models", console.models_page, {"": console.change_model}),
        *_console("/console/codes", console.codes_page, {"": console.create_codes}),
        *_console("/console/settings", console.settings_page, {"": console.save_settings}),
        *_console("/console/reports", console_reports.reports_page, {}),
        Route("/console/reports.csv", signed_in(console_reports.reports_csv, admin=True), methods=["GET"]),
        *_console("/console/alerts", console_alerts.alerts_page,
                  {"": console_alerts.add_webhook, "/enabled": console_alerts.set_webhook_enabled,
                   "/remove": console_alerts.remove_webhook, "/test": console_alerts.test_alert}),
        Mount("/static", app=StaticFiles(directory=STATIC)),
    ]
    app = Starlette(routes=pages, middleware=[Middleware(SecurityHeaders)])
    app.state.gateway = gateway
    settings = gateway.settings
    attempts = (MemoryAttempts() if gateway.redis is None
                else RedisAttempts(gateway.redis, settings.redis_prefix + "web-throttle:"))
    app.state.throttle = LoginThrottle(
        attempts,
        per_address=replace(LOGIN_PER_ADDRESS, free=settings.login_failures_per_address),
        signups=replace(SIGNUP_PER_ADDRESS, free=settings.signups_per_hour))
    return app
