"""`ccgate users`, `ccgate credit`, `ccgate codes`: users and their prepaid credit."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from ccgate.cli.common import command, dollars, group, usd, whole, with_operations
from ccgate.ops import Operations, usd_to_micro


def add_user(args: argparse.Namespace) -> None:
    async def action(ops: Operations) -> None:
        user_id = await ops.add_user(args.email, password=args.password, admin=args.admin, credit_usd=args.credit_usd)
        credit = (f", {usd(usd_to_micro(args.credit_usd))} prepaid credit" if args.credit_usd is not None
                  else ", postpaid")
        print(f"user {args.email} created (id {user_id}{', admin' if args.admin else ''}{credit})")

    with_operations(action)


def disable_user(args: argparse.Namespace) -> None:
    async def action(ops: Operations) -> None:
        await ops.set_user_disabled(args.email, args.disable)
        print(f"user {args.email} {'disabled' if args.disable else 'enabled'}")

    with_operations(action)


def grant_credit(args: argparse.Namespace) -> None:
    async def action(ops: Operations) -> None:
        balance = await ops.grant_credit(args.email, args.usd, args.note)
        print(f"{args.email} now has {usd(balance)} of credit")

    with_operations(action)


def dollars_or_default(text: str) -> float | None:
    """An overdraft in USD, or None for `default`."""
    return None if text == "default" else dollars(allow_negative=False)(text)


def set_overdraft(args: argparse.Namespace) -> None:
    async def action(ops: Operations) -> None:
        amount = args.usd
        await ops.set_overdraft(args.email, amount)
        print(f"{args.email} may go " + ("as far below zero as the default overdraft" if amount is None
                                         else f"down to -{usd(usd_to_micro(amount))}") + " while requests run")

    with_operations(action)


def ledger_line(entry: dict[str, Any]) -> str:
    """One ledger entry as `credit show` prints it: when (UTC), what, how much, why."""
    when = datetime.fromtimestamp(entry["created_ms"] / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return f"  {when}  {entry['kind']:10} {usd(entry['amount_micro'], signed=True):>12}  {entry['note'] or ''}".rstrip()


def show_credit(args: argparse.Namespace) -> None:
    async def action(ops: Operations) -> None:
        balance = (await ops.user(args.email))["balance_micro"]
        print(f"{args.email}: " + ("postpaid (no credit limit)" if balance is None else usd(balance)))
        for entry in await ops.ledger(args.email):
            print(ledger_line(entry))

    with_operations(action)


def create_codes(args: argparse.Namespace) -> None:
    async def action(ops: Operations) -> None:
        codes = await ops.create_codes(args.usd, args.count, args.note)
        print(f"{len(codes)} code(s) worth {usd(usd_to_micro(args.usd))} each; they are shown once:", file=sys.stderr)
        print("\n".join(codes))

    with_operations(action)


def register(commands: Any) -> None:
    users = group(commands, "users", "manage users")
    parser = command(users, "add", add_user, "add a user")
    parser.add_argument("email")
    parser.add_argument("--password")
    parser.add_argument("--admin", action="store_true")
    parser.add_argument("--credit-usd", type=dollars(allow_negative=False), help="prepaid credit (omit: postpaid)")
    for verb, disable in (("disable", True), ("enable", False)):
        command(users, verb, disable_user, f"{verb} a user and all of their keys", disable=disable) \
            .add_argument("email")

    credit = group(commands, "credit", "prepaid credit")
    parser = command(credit, "grant", grant_credit, "grant credit in USD (negative to correct)")
    parser.add_argument("email")
    parser.add_argument("usd", type=dollars(allow_negative=True))
    parser.add_argument("--note")
    command(credit, "show", show_credit, "a user's balance and dated ledger").add_argument("email")
    parser = command(credit, "overdraft", set_overdraft, "how far below zero a balance may go while requests run")
    parser.add_argument("email")
    parser.add_argument("usd", type=dollars_or_default,
                        help="an amount in USD, or `default` for CCGATE_DEFAULT_OVERDRAFT_USD")

    codes = group(commands, "codes", "redemption codes")
    parser = command(codes, "create", create_codes, "create codes users redeem for credit")
    parser.add_argument("--usd", type=dollars(allow_negative=False), required=True)
    parser.add_argument("--count", type=whole, default=1)
    parser.add_argument("--note")
