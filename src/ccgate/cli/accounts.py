"""`ccgate accounts`: the upstream Anthropic accounts."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from ccgate.cli.common import command, group, model_list, whole, with_operations
from ccgate.ops import DEFAULT_BASE_URL, OperationError, Operations

API_KEY_ENV = "CCGATE_ACCOUNT_API_KEY"


def account_secret(args: argparse.Namespace) -> str:
    """The account's API key: from standard input (`--api-key -`), an environment variable
    (`--api-key-env VAR`, else CCGATE_ACCOUNT_API_KEY), or, least private, the command line."""
    if args.api_key == "-":
        secret = sys.stdin.readline().strip()
    elif args.api_key is not None:
        secret = args.api_key
    else:
        variable = args.api_key_env or API_KEY_ENV
        secret = os.environ.get(variable, "").strip()
        if not secret:
            raise OperationError(f"no API key: give --api-key - (standard input), set {variable}, "
                                 "or give --api-key KEY")
    if not secret:
        raise OperationError("no API key on standard input")
    return secret


def add_account(args: argparse.Namespace) -> None:
    secret = account_secret(args)

    async def action(ops: Operations) -> None:
        await ops.add_account(args.name, secret, base_url=args.base_url, models=args.models,
                              priority=args.priority, weight=args.weight, rpm=args.rpm, concurrency=args.concurrency)
        print(f"account {args.name} added ({args.base_url})")

    with_operations(action)


def window_text(kind: str, window: dict[str, int | None], now_ms: int) -> str:
    """One rate-limit window, e.g. "input-tokens 12,000/30,000 (whole in 42s)"."""
    def count(value: int | None) -> str:
        return "?" if value is None else f"{value:,}"

    text = f"{kind} {count(window.get('remaining'))}/{count(window.get('limit'))}"
    reset_ms = window.get("reset_ms")
    if reset_ms is not None and reset_ms > now_ms:
        text += f" (whole in {(reset_ms - now_ms) / 1000:.0f}s)"
    return text


def account_line(account: dict[str, Any], now_ms: int) -> str:
    """One account as `accounts list` shows it: state, cooldown and its cause, load, headroom (what its
    rate-limit windows have left, and why it cannot be routed to now), last error."""
    if not account["enabled"]:
        state = f"DISABLED ({account['disabled_reason'] or 'by operator'})"
    elif account["cooldown_until_ms"] and account["cooldown_until_ms"] > now_ms:
        seconds = (account["cooldown_until_ms"] - now_ms) / 1000
        state = f"COOLING {seconds:.0f}s ({account['cause']})"
    else:
        state = "healthy"
    parts = [account["name"], account["base_url"], state,
             f"in-flight {account['in_flight'] or 0}", f"last-minute {account['requests_last_minute'] or 0}",
             f"priority {account['priority']}", f"weight {account['weight']}"]
    if account["models"]:
        parts.append(f"models {account['models']}")
    windows = account.get("ratelimit") or {}
    parts.extend(window_text(kind, window, now_ms) for kind, window in windows.items())
    if account.get("unroutable"):
        parts.append(f"unroutable: {account['unroutable']}")
    if account["last_error"]:
        parts.append(f"last error: {account['last_error']}")
    return "  ".join(parts)


def list_accounts(args: argparse.Namespace) -> None:
    async def action(ops: Operations) -> None:
        now_ms = int(time.time() * 1000)
        for account in await ops.list_accounts():
            print(account_line(account, now_ms))

    with_operations(action)


def enable_account(args: argparse.Namespace) -> None:
    async def action(ops: Operations) -> None:
        await ops.set_account_enabled(args.name, args.enable, None if args.enable else "disabled by operator")
        print(f"account {args.name} {'enabled' if args.enable else 'disabled'}")

    with_operations(action)


def register(commands: Any) -> None:
    accounts = group(commands, "accounts", "manage upstream accounts")
    parser = command(accounts, "add", add_account, "add an upstream Anthropic account")
    parser.add_argument("name")
    secret = parser.add_mutually_exclusive_group()
    secret.add_argument("--api-key", metavar="KEY|-", help="the account's key; - reads it from standard input")
    secret.add_argument("--api-key-env", metavar="VAR",
                        help=f"read the key from this variable (default: {API_KEY_ENV})")
    parser.add_argument("--base-url", default=DEFAULT_BASE_URL)
    parser.add_argument("--priority", type=whole, default=0, help="higher tiers are used first")
    parser.add_argument("--weight", type=whole, default=1, help="share of load within a tier")
    parser.add_argument("--rpm", type=whole, help="this account's own requests per minute")
    parser.add_argument("--concurrency", type=whole, help="this account's own requests in flight")
    parser.add_argument("--models", type=model_list, help="comma-separated models it serves (default: all)")
    command(accounts, "list", list_accounts, "accounts with health, cooldowns and load")
    for verb, enable in (("enable", True), ("disable", False)):
        command(accounts, verb, enable_account, f"{verb} an upstream account", enable=enable).add_argument("name")
