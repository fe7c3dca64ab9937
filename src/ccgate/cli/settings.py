"""`ccgate settings`: the dashboard's sign-up policy and caps on users' own keys."""

from __future__ import annotations

import argparse
from typing import Any

from ccgate.cli.common import command, dollars, group, usd, whole, with_operations
from ccgate.ops import CAPS, SIGNUP_MODES, OperationError, Operations, WebSettings


def print_settings(settings: WebSettings) -> None:
    print(f"sign-up: {settings.signup_mode}" + (f" (invite code {settings.invite_code})"
                                                  if settings.signup_mode == "invite" else ""))
    print(f"starting credit: {usd(settings.starting_credit_micro)}")
    for cap in CAPS:
        print(f"{cap.replace('_', ' ')}: {getattr(settings, cap) or 'none'}")


def show_settings(args: argparse.Namespace) -> None:
    async def action(ops: Operations) -> None:
        print_settings(await ops.web_settings())

    with_operations(action)


def set_settings(args: argparse.Namespace) -> None:
    changes = {name: getattr(args, name) for name in ("signup_mode", "invite_code", "starting_credit_usd", *CAPS)
               if getattr(args, name) is not None}
    if not changes:
        raise OperationError("nothing to change: give at least one setting (see `ccgate settings set --help`)")

    async def action(ops: Operations) -> None:
        print_settings(await ops.change_web_settings(**changes))

    with_operations(action)


def register(commands: Any) -> None:
    settings = group(commands, "settings", "the dashboard's sign-up policy and caps on users' own keys")
    command(settings, "show", show_settings, "the settings in force")
    parser = command(settings, "set", set_settings, "change some settings, leaving the others")
    parser.add_argument("--signup", dest="signup_mode", choices=SIGNUP_MODES, help="who may sign up")
    parser.add_argument("--invite-code", help="the code sign-up by invite asks for (6 characters or more)")
    parser.add_argument("--starting-credit-usd", type=dollars(allow_negative=False), help="credit a new sign-up gets")
    for cap in CAPS:
        parser.add_argument("--" + cap.replace("_", "-"), type=whole, help="cap on users' own keys (0: none)")
