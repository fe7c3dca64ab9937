"""The console's alerts page: the webhooks alerts go to (add, enable, disable, remove, test) and the
delivery log, through the same AlertOperations as the CLI and the admin API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from ccgate.alerting import WEBHOOK_KINDS, AlertError, AlertOperations
from ccgate.http.web.forms import FormError, read_form, secret, text
from ccgate.http.web.render import done, gateway_of, render

DELIVERIES_SHOWN = 50
PAGE = "/console/alerts"


def alert_operations(request: Request) -> AlertOperations:
    ops = gateway_of(request).ops
    return AlertOperations(ops.engine, ops.box)


async def refused_as_form_error(change: Callable[[], Awaitable[object]]) -> None:
    """Run an alert operation; its refusal is shown on the page like any form's."""
    try:
        await change()
    except AlertError as error:
        raise FormError(str(error)) from None


async def alerts_page(request: Request) -> Response:
    alerts = alert_operations(request)
    return render(request, "console_alerts.html", title="Alerts", webhooks=await alerts.webhooks(),
                  deliveries=await alerts.deliveries(DELIVERIES_SHOWN), kinds=WEBHOOK_KINDS)


async def add_webhook(request: Request) -> Response:
    form = await read_form(request)
    name, url, kind, signing = text(form, "name"), text(form, "url"), text(form, "kind"), secret(form, "secret")
    if not name:
        raise FormError("give the webhook a name")
    if signing and kind == "slack":
        raise FormError("a slack webhook is not signed: leave the secret empty")
    await refused_as_form_error(lambda: alert_operations(request).add_webhook(name, url, kind=kind,
                                                                              secret=signing or None))
    return done(PAGE, "webhook-added")


async def set_webhook_enabled(request: Request) -> Response:
    form = await read_form(request)
    name, enabled = text(form, "name"), text(form, "enabled") == "1"
    await refused_as_form_error(lambda: alert_operations(request).set_webhook_enabled(name, enabled))
    return done(PAGE, "webhook-changed")


async def remove_webhook(request: Request) -> Response:
    form = await read_form(request)
    name = text(form, "name")
    await refused_as_form_error(lambda: alert_operations(request).remove_webhook(name))
    return done(PAGE, "webhook-removed")


async def test_alert(request: Request) -> Response:
    await read_form(request)
    await refused_as_form_error(alert_operations(request).test)
    return done(PAGE, "alert-tested")
