"""`ccgate alerts`: the webhooks alerts go to, a test alert, and the delivery log."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ccgate.cli.common import command, group, whole, with_operations
from ccgate.ops import OperationError, Operations
from ccgate.store.alerts_repo import WEBHOOK_KINDS

if TYPE_CHECKING:
    from ccgate.alerting import AlertOperations


def with_alerts(action: Callable[[AlertOperations], Awaitable[None]]) -> None:
    """Run one alert operation against the database; its refusals are the CLI's usual errors."""
    from ccgate.alerting import AlertError, AlertOperations  # aiohttp is loaded only for alert commands

    async def run(ops: Operations) -> None:
        try:
            await action(AlertOperations(ops.engine, ops.box))
        except AlertError as error:
            raise OperationError(str(error)) from None

    with_operations(run)


def webhook_secret(args: argparse.Namespace) -> str | None:
    """The signing secret: `--secret -` reads it from standard input, keeping it out of shell history."""
    if args.secret != "-":
        return args.secret  # type: ignore[no-any-return]
    secret = sys.stdin.readline().strip()
    if not secret:
        raise OperationError("no secret on standard input")
    return secret


def add_webhook(args: argparse.Namespace) -> None:
    secret = webhook_secret(args)
    if secret and args.kind == "slack":
        raise OperationError("a slack webhook is not signed: leave out --secret")

    async def action(alerts: AlertOperations) -> None:
        await alerts.add_webhook(args.name, args.url, kind=args.kind, secret=secret)
        print(f"webhook {args.name} added ({args.kind}{', signed' if secret else ''})")

    with_alerts(action)


def webhook_line(hook: dict[str, Any]) -> str:
    return "  ".join([hook["name"], hook["kind"], hook["url"], "signed" if hook["signed"] else "unsigned",
                      "enabled" if hook["enabled"] else "disabled"])


def list_webhooks(args: argparse.Namespace) -> None:
    async def action(alerts: AlertOperations) -> None:
        hooks = await alerts.webhooks()
        print("\n".join(webhook_line(hook) for hook in hooks) if hooks else "no webhooks")

    with_alerts(action)


def enable_webhook(args: argparse.Namespace) -> None:
    async def action(alerts: AlertOperations) -> None:
        await alerts.set_webhook_enabled(args.name, args.enable)
        print(f"webhook {args.name} {'enabled' if args.enable else 'disabled'}")

    with_alerts(action)


def remove_webhook(args: argparse.Namespace) -> None:
    async def action(alerts: AlertOperations) -> None:
        await alerts.remove_webhook(args.name)
        print(f"webhook {args.name} removed, with its delivery log")

    with_alerts(action)


def test_alert(args: argparse.Namespace) -> None:
    async def action(alerts: AlertOperations) -> None:
        enabled = [hook for hook in await alerts.webhooks() if hook["enabled"]]
        if not enabled:
            raise OperationError("no enabled webhook to test (see `ccgate alerts add`)")
        delivered = await alerts.test()
        print(f"test alert delivered to {delivered} of {len(enabled)} enabled webhook(s)")
        if delivered < len(enabled):
            raise OperationError("some deliveries failed: see `ccgate alerts deliveries`")

    with_alerts(action)


def delivery_line(delivery: dict[str, Any]) -> str:
    when = datetime.fromtimestamp(delivery["created_ms"] / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
    status = f"HTTP {delivery['http_status']}" if delivery["http_status"] else ""
    parts = [when, delivery["webhook"], delivery["alert"], delivery["subject"], delivery["outcome"],
             f"{delivery['attempts']} attempt(s)", status, delivery["error"] or "", delivery["message"]]
    return "  ".join(part for part in parts if part)


def list_deliveries(args: argparse.Namespace) -> None:
    async def action(alerts: AlertOperations) -> None:
        deliveries = await alerts.deliveries(args.limit)
        print("\n".join(delivery_line(d) for d in deliveries) if deliveries else "no deliveries yet")

    with_alerts(action)


def register(commands: Any) -> None:
    alerts = group(commands, "alerts", "alert webhooks and their delivery log")
    parser = command(alerts, "add", add_webhook, "add a webhook alerts are POSTed to")
    parser.add_argument("name")
    parser.add_argument("url")
    parser.add_argument("--kind", choices=WEBHOOK_KINDS, default="generic",
                        help="generic: JSON signed with HMAC-SHA256; slack: a Slack-compatible payload")
    parser.add_argument("--secret", metavar="SECRET|-", help="signing secret of a generic webhook; "
                        "- reads it from standard input")
    command(alerts, "list", list_webhooks, "the webhooks (URLs shown up to their path, never secrets)")
    for verb, enable in (("enable", True), ("disable", False)):
        command(alerts, verb, enable_webhook, f"{verb} a webhook", enable=enable).add_argument("name")
    command(alerts, "remove", remove_webhook, "remove a webhook and its delivery log").add_argument("name")
    command(alerts, "test", test_alert, "send a test alert to every enabled webhook now")
    parser = command(alerts, "deliveries", list_deliveries, "the newest deliveries, with their outcome")
    parser.add_argument("--limit", type=whole, default=50)
