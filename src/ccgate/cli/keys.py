"""`ccgate keys`: API keys and their limits."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ccgate.cli.common import command, group, model_list, whole, with_operations
from ccgate.ops import KeyLimits, Operations


def limits_of(args: argparse.Namespace) -> KeyLimits:
    return KeyLimits(rpm=args.rpm, concurrency=args.concurrency, token_budget=args.token_budget, window=args.window,
                     models=args.models, expires=args.expires, cache=args.cache)


def create_key(args: argparse.Namespace) -> None:
    async def action(ops: Operations) -> None:
        key = await ops.create_key(args.email, name=args.name, limits=limits_of(args))
        print(f"key {key.id} ({key.display}) created for {args.email}; it is shown once, below:", file=sys.stderr)
        print(key.plaintext)

    with_operations(action)


def update_key(args: argparse.Namespace) -> None:
    async def action(ops: Operations) -> None:
        await ops.update_key(args.key_id, limits_of(args), name=args.name)
        print(f"key {args.key_id} updated")

    with_operations(action)


def list_keys(args: argparse.Namespace) -> None:
    async def action(ops: Operations) -> None:
        for key in await ops.list_keys(args.email):
            state = "revoked" if key["revoked_ms"] else "active"
            limits = " ".join(f"{name}={key[column]}" for name, column in (
                ("rpm", "rpm"), ("concurrency", "concurrency"), ("budget", "token_budget"),
                ("window", "window_seconds"), ("models", "models")) if key[column] is not None)
            print(f"{key['id']}  {key['display']}  {state:8}  {key['name']}  {limits}".rstrip())

    with_operations(action)


def revoke_key(args: argparse.Namespace) -> None:
    async def action(ops: Operations) -> None:
        await ops.revoke_key(args.key_id)
        print(f"key {args.key_id} revoked")

    with_operations(action)


def limit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rpm", type=whole, help="requests per minute (sliding window)")
    parser.add_argument("--concurrency", type=whole, help="requests in flight at once")
    parser.add_argument("--token-budget", type=whole, help="input + output + cache-write tokens per window")
    parser.add_argument("--window", help="the budget's rolling window, e.g. 5h, 30m, 1d")
    parser.add_argument("--models", type=model_list, help="comma-separated models the key may use")
    parser.add_argument("--expires", help="expiry date, e.g. 2027-01-31 or 2027-01-31T12:00:00Z")
    parser.add_argument("--cache", action=argparse.BooleanOptionalAction, default=None,
                        help="answer identical requests from the response cache (default: on)")


def register(commands: Any) -> None:
    keys = group(commands, "keys", "manage API keys")
    parser = command(keys, "create", create_key, "create a key; it is printed once, alone on the last line")
    parser.add_argument("email")
    parser.add_argument("--name", default="")
    limit_arguments(parser)
    parser = command(keys, "update", update_key, "change a key's name or limits (0 is unlimited)")
    parser.add_argument("key_id", help="the key's id (key_..., as `keys list` shows), not the key itself")
    parser.add_argument("--name")
    limit_arguments(parser)
    command(keys, "list", list_keys, "list a user's keys").add_argument("email")
    command(keys, "revoke", revoke_key, "revoke a key").add_argument("key_id", help="the key's id (key_...)")
