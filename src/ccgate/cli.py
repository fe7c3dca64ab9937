"""The `ccgate` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from functools import partial

from ccgate.broadcast import CONFIGURATION, announce_change, redis_client
from ccgate.config import Settings
from ccgate.crypto import SecretBox
from ccgate.ops import CAPS, DEFAULT_BASE_URL, SIGNUP_MODES, KeyLimits, OperationError, Operations, WebSettings
from ccgate.store.db import create_engine, migrate

DEMO_EMAIL = "demo@ccgate.local"
DEMO_ACCOUNT = "simulator"


def _with_operations(action: Callable[[Operations], Awaitable[None]]) -> None:
    """Migrate the database, then run one operation against it (announcing a change through Redis,
    when there is one, so running servers reload at once)."""
    settings = Settings.from_env()
    migrate(settings.database_url)

    async def run() -> None:
        engine = create_engine(settings.database_url)
        redis = redis_client(settings.redis_url) if settings.redis_url else None
        announce = partial(announce_change, redis, settings.redis_prefix + CONFIGURATION) if redis else None
        try:
            await action(Operations(engine, SecretBox(settings.server_secret()), settings, announce))
        finally:
            await engine.dispose()
            if redis is not None:
                await redis.aclose()

    asyncio.run(run())


def _migrate_in_child() -> None:
    """Bring the database to the newest schema in a child process, so that a server never imports
    Alembic (some 10 MB it would keep for its whole life)."""
    done = subprocess.run([sys.executable, "-m", "ccgate", "migrate"], stdout=subprocess.DEVNULL)
    if done.returncode != 0:
        raise OperationError("the database could not be migrated (see the errors above)")


def _uvicorn_options(host: str, port: int) -> dict:
    from ccgate.http.server_limits import LimitedHttpToolsProtocol

    return {"host": host, "port": port, "loop": "uvloop", "http": LimitedHttpToolsProtocol, "lifespan": "on",
            "log_level": "warning", "access_log": False, "server_header": False,
            "limit_concurrency": LimitedHttpToolsProtocol.limits.max_connections,
            "proxy_headers": False}  # X-Forwarded-For is believed only from CCGATE_TRUSTED_PROXIES


# -- servers -------------------------------------------------------------------------------------

def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from ccgate.app import create_app

    settings = Settings.from_env()
    if args.workers > 1 and not settings.redis_url:
        raise OperationError(
            "--workers above 1 needs CCGATE_REDIS_URL: the processes must share rate limits, leases, "
            "credit holds and cooldowns, or each would enforce its own")
    _migrate_in_child()
    print(f"ccgate listening on http://{args.host}:{args.port} with {args.workers} worker(s) "
          f"(data: {settings.data_dir})", flush=True)
    if args.workers > 1:
        os.environ["CCGATE_WORKERS"] = str(args.workers)  # read by each worker's Settings
        uvicorn.run("ccgate.app:create_app", factory=True, workers=args.workers,
                    **_uvicorn_options(args.host, args.port))
    else:
        uvicorn.Server(uvicorn.Config(create_app(settings), **_uvicorn_options(args.host, args.port))).run()


def cmd_sim(args: argparse.Namespace) -> None:
    from ccgate.sim.config import SimConfig
    from ccgate.sim.server import run_sim

    config = SimConfig(latency_ms=args.latency_ms, ttft_ms=args.ttft_ms, tokens_per_sec=args.tokens_per_sec)
    print(f"Anthropic API simulator on http://{args.host}:{args.port}", flush=True)
    run_sim(args.host, args.port, config)


def demo_instructions(base_url: str, key: str) -> str:
    return f"""
ccgate demo is running: the gateway at {base_url}, answered by the built-in simulator.

Your demo key (shown once): {key}

curl:
  curl {base_url}/v1/messages \\
    -H "x-api-key: {key}" -H "anthropic-version: 2023-06-01" -H "content-type: application/json" \\
    -d '{{"model":"claude-sonnet-4-6","max_tokens":512,"messages":[{{"role":"user","content":"Hello, world!"}}]}}'

Python (pip install anthropic):
  import anthropic
  client = anthropic.Anthropic(api_key="{key}", base_url="{base_url}")
  print(client.messages.create(model="claude-sonnet-4-6", max_tokens=512,
        messages=[{{"role": "user", "content": "Hello"}}]).content[0].text)

OpenAI SDK (pip install openai):
  client = openai.OpenAI(api_key="{key}", base_url="{base_url}/v1")

Claude Code:
  ANTHROPIC_BASE_URL={base_url} ANTHROPIC_API_KEY={key} claude

Usage of any request: curl {base_url}/v1/usage/<request-id> -H "x-api-key: {key}"
Press Ctrl-C to stop.
""".strip()


def cmd_demo(args: argparse.Namespace) -> None:
    import uvicorn

    from ccgate.app import create_app
    from ccgate.sim.config import SimConfig
    from ccgate.sim.server import start_sim

    settings = Settings.from_env()
    _migrate_in_child()

    async def main() -> None:
        runner, sim_port = await start_sim("127.0.0.1", args.sim_port, SimConfig())
        app = create_app(settings)
        ops: Operations = app.state.gateway.ops
        try:
            await ops.user(DEMO_EMAIL)
        except OperationError:
            await ops.add_user(DEMO_EMAIL)
        sim_url = f"http://127.0.0.1:{sim_port}"
        try:
            await ops.add_account(DEMO_ACCOUNT, "sk-ant-sim-demo", base_url=sim_url)
        except OperationError:
            await ops.update_account(DEMO_ACCOUNT, base_url=sim_url, enabled=True, disabled_reason=None)
        key = await ops.create_key(DEMO_EMAIL, name="demo")
        server = uvicorn.Server(uvicorn.Config(app, **_uvicorn_options(args.host, args.port)))
        print(demo_instructions(f"http://{args.host}:{args.port}", key.plaintext), flush=True)
        try:
            await server.serve()
        finally:
            await runner.cleanup()

    asyncio.run(main())


def cmd_scaffold(args: argparse.Namespace) -> None:
    from pathlib import Path

    from ccgate.scaffold import ScaffoldError, scaffold

    base_url = args.base_url or Settings.from_env().public_url
    try:
        written = scaffold(Path(args.directory), args.lang, key=args.key, base_url=base_url)
    except ScaffoldError as error:
        print(f"ccgate: {error}", file=sys.stderr)
        sys.exit(2)
    print(f"wrote a {args.lang} project for {base_url} into {args.directory}:")
    for path in written:
        print(f"  {path}")
    print(f"next: cd {args.directory} and follow README.md")


def cmd_migrate(args: argparse.Namespace) -> None:
    settings = Settings.from_env()
    migrate(settings.database_url)
    print("database is at the newest schema")


# -- administration ------------------------------------------------------------------------------

def cmd_users_add(args: argparse.Namespace) -> None:
    async def action(ops: Operations) -> None:
        user_id = await ops.add_user(args.email, password=args.password, admin=args.admin, credit_usd=args.credit_usd)
        credit = f", ${args.credit_usd} prepaid credit" if args.credit_usd is not None else ", postpaid"
        print(f"user {args.email} created (id {user_id}{', admin' if args.admin else ''}{credit})")

    _with_operations(action)


def cmd_users_disable(args: argparse.Namespace) -> None:
    async def action(ops: Operations) -> None:
        await ops.set_user_disabled(args.email, args.disable)
        print(f"user {args.email} {'disabled' if args.disable else 'enabled'}")

    _with_operations(action)


def cmd_credit_grant(args: argparse.Namespace) -> None:
    async def action(ops: Operations) -> None:
        balance = await ops.grant_credit(args.email, args.usd, args.note)
        print(f"{args.email} now has ${balance / 1_000_000:.6f} of credit")

    _with_operations(action)


def cmd_credit_show(args: argparse.Namespace) -> None:
    async def action(ops: Operations) -> None:
        user = await ops.user(args.email)
        balance = user["balance_micro"]
        print(f"{args.email}: " + ("postpaid (no credit limit)" if balance is None else f"${balance / 1_000_000:.6f}"))
        for entry in await ops.ledger(args.email):
            print(f"  {entry['kind']:10} {entry['amount_micro'] / 1_000_000:+.6f}  {entry['note'] or ''}")

    _with_operations(action)


def cmd_codes_create(args: argparse.Namespace) -> None:
    async def action(ops: Operations) -> None:
        codes = await ops.create_codes(args.usd, args.count, args.note)
        print(f"{len(codes)} code(s) worth ${args.usd} each; they are shown once:", file=sys.stderr)
        print("\n".join(codes))

    _with_operations(action)


def cmd_keys_create(args: argparse.Namespace) -> None:
    async def action(ops: Operations) -> None:
        key = await ops.create_key(args.email, name=args.name, limits=_key_limits(args))
        print(f"key {key.id} ({key.display}) created for {args.email}; it is shown once, below:", file=sys.stderr)
        print(key.plaintext)

    _with_operations(action)


def _key_limits(args: argparse.Namespace) -> KeyLimits:
    return KeyLimits(rpm=args.rpm, concurrency=args.concurrency, token_budget=args.token_budget, window=args.window,
                     models=args.models, expires=args.expires, cache=args.cache)


def cmd_keys_update(args: argparse.Namespace) -> None:
    async def action(ops: Operations) -> None:
        await ops.update_key(args.key_id, _key_limits(args), name=args.name)
        print(f"key {args.key_id} updated")

    _with_operations(action)


def cmd_keys_list(args: argparse.Namespace) -> None:
    async def action(ops: Operations) -> None:
        for key in await ops.list_keys(args.email):
            state = "revoked" if key["revoked_ms"] else "active"
            limits = " ".join(f"{name}={key[column]}" for name, column in (
                ("rpm", "rpm"), ("concurrency", "concurrency"), ("budget", "token_budget"),
                ("window", "window_seconds"), ("models", "models")) if key[column] is not None)
            print(f"{key['id']}  {key['display']}  {state:8}  {key['name']}  {limits}".rstrip())

    _with_operations(action)


def cmd_keys_revoke(args: argparse.Namespace) -> None:
    async def action(ops: Operations) -> None:
        await ops.revoke_key(args.key_id)
        print(f"key {args.key_id} revoked")

    _with_operations(action)


def cmd_accounts_add(args: argparse.Namespace) -> None:
    async def action(ops: Operations) -> None:
        await ops.add_account(args.name, args.api_key, base_url=args.base_url, models=args.models,
                              priority=args.priority, weight=args.weight, rpm=args.rpm, concurrency=args.concurrency)
        print(f"account {args.name} added ({args.base_url})")

    _with_operations(action)


def account_line(account: dict, now_ms: int) -> str:
    """One account as `accounts list` shows it: state, cooldown and its cause, load, last error."""
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
    if account["last_error"]:
        parts.append(f"last error: {account['last_error']}")
    return "  ".join(parts)


def cmd_accounts_list(args: argparse.Namespace) -> None:
    async def action(ops: Operations) -> None:
        now_ms = int(time.time() * 1000)
        for account in await ops.list_accounts():
            print(account_line(account, now_ms))

    _with_operations(action)


def cmd_accounts_enable(args: argparse.Namespace) -> None:
    async def action(ops: Operations) -> None:
        await ops.set_account_enabled(args.name, args.enable, None if args.enable else "disabled by operator")
        print(f"account {args.name} {'enabled' if args.enable else 'disabled'}")

    _with_operations(action)


def cmd_settings_show(args: argparse.Namespace) -> None:
    async def action(ops: Operations) -> None:
        print_settings(await ops.web_settings())

    _with_operations(action)


def cmd_settings_set(args: argparse.Namespace) -> None:
    changes = {name: getattr(args, name) for name in ("signup_mode", "invite_code", "starting_credit_usd", *CAPS)
               if getattr(args, name) is not None}
    if not changes:
        raise OperationError("nothing to change: give at least one setting (see `ccgate settings set --help`)")

    async def action(ops: Operations) -> None:
        print_settings(await ops.change_web_settings(**changes))

    _with_operations(action)


def print_settings(settings: WebSettings) -> None:
    credit = settings.starting_credit_micro / 1_000_000
    print(f"sign-up: {settings.signup_mode}" + (f" (invite code {settings.invite_code})"
                                                  if settings.signup_mode == "invite" else ""))
    print(f"starting credit: ${credit:.2f}")
    for cap in CAPS:
        print(f"{cap.replace('_', ' ')}: {getattr(settings, cap) or 'none'}")


def _whole(text: str) -> int:
    """A whole number, 0 or more."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"must be a whole number, 0 or more: {text!r}")
    return int(text)


def _usd(*, allow_negative: bool) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an amount of dollars: {text!r}") from None
        if value != value or value in (float("inf"), float("-inf")) or (value < 0 and not allow_negative):
            raise argparse.ArgumentTypeError(f"not a usable amount of dollars: {text!r}")
        return value

    return parse


def _model_list(text: str) -> list[str]:
    return [model.strip() for model in text.split(",") if model.strip()]


def _limit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rpm", type=_whole, help="requests per minute (sliding window)")
    parser.add_argument("--concurrency", type=_whole, help="requests in flight at once")
    parser.add_argument("--token-budget", type=_whole, help="input + output + cache-write tokens per window")
    parser.add_argument("--window", help="the budget's rolling window, e.g. 5h, 30m, 1d")
    parser.add_argument("--models", type=_model_list, help="comma-separated models the key may use")
    parser.add_argument("--expires", help="expiry date, e.g. 2027-01-31 or 2027-01-31T12:00:00Z")
    parser.add_argument("--cache", action=argparse.BooleanOptionalAction, default=None,
                        help="answer identical requests from the response cache (default: on)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ccgate", description="Self-hosted API gateway for Claude.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=_whole, default=1, help="processes sharing the port (above 1 needs Redis)")
    serve.set_defaults(func=cmd_serve)

    sim = commands.add_parser("sim", help="run the Anthropic API simulator alone")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=9100)
    sim.add_argument("--latency-ms", type=float, default=0.0)
    sim.add_argument("--ttft-ms", type=float, default=0.0)
    sim.add_argument("--tokens-per-sec", type=float, default=0.0)
    sim.set_defaults(func=cmd_sim)

    demo = commands.add_parser("demo", help="run the gateway and the simulator with a demo user and key")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8080)
    demo.add_argument("--sim-port", type=int, default=0)
    demo.set_defaults(func=cmd_demo)

    commands.add_parser("migrate", help="bring the database to the newest schema").set_defaults(func=cmd_migrate)

    scaffold = commands.add_parser("scaffold", help="write a small client project (.env, examples, README) for a key")
    scaffold.add_argument("directory")
    scaffold.add_argument("--lang", choices=("python", "node"), default="python")
    scaffold.add_argument("--key", help="the gateway key to put in .env (else a placeholder)")
    scaffold.add_argument("--base-url", help="the gateway's URL (default: CCGATE_PUBLIC_URL)")
    scaffold.set_defaults(func=cmd_scaffold)

    users = commands.add_parser("users", help="manage users").add_subparsers(dest="action", required=True)
    add_user = users.add_parser("add", help="add a user")
    add_user.add_argument("email")
    add_user.add_argument("--password")
    add_user.add_argument("--admin", action="store_true")
    add_user.add_argument("--credit-usd", type=_usd(allow_negative=False), help="prepaid credit (omit: postpaid)")
    add_user.set_defaults(func=cmd_users_add)
    for verb, disable in (("disable", True), ("enable", False)):
        toggle = users.add_parser(verb, help=f"{verb} a user and all of their keys")
        toggle.add_argument("email")
        toggle.set_defaults(func=cmd_users_disable, disable=disable)

    credit = commands.add_parser("credit", help="prepaid credit").add_subparsers(dest="action", required=True)
    grant = credit.add_parser("grant", help="grant credit in USD (negative to correct)")
    grant.add_argument("email")
    grant.add_argument("usd", type=_usd(allow_negative=True))
    grant.add_argument("--note")
    grant.set_defaults(func=cmd_credit_grant)
    show = credit.add_parser("show", help="a user's balance and ledger")
    show.add_argument("email")
    show.set_defaults(func=cmd_credit_show)

    codes = commands.add_parser("codes", help="redemption codes").add_subparsers(dest="action", required=True)
    create_codes = codes.add_parser("create", help="create codes users redeem for credit")
    create_codes.add_argument("--usd", type=_usd(allow_negative=False), required=True)
    create_codes.add_argument("--count", type=_whole, default=1)
    create_codes.add_argument("--note")
    create_codes.set_defaults(func=cmd_codes_create)

    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(dest="action", required=True)
    create = keys.add_parser("create", help="create a key; it is printed once, alone on the last line")
    create.add_argument("email")
    create.add_argument("--name", default="")
    _limit_arguments(create)
    create.set_defaults(func=cmd_keys_create)
    update = keys.add_parser("update", help="change a key's name or limits (0 is unlimited)")
    update.add_argument("key_id")
    update.add_argument("--name")
    _limit_arguments(update)
    update.set_defaults(func=cmd_keys_update)
    listing = keys.add_parser("list", help="list a user's keys")
    listing.add_argument("email")
    listing.set_defaults(func=cmd_keys_list)
    revoke = keys.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key_id")
    revoke.set_defaults(func=cmd_keys_revoke)

    settings = commands.add_parser("settings", help="the dashboard's sign-up policy and caps on users' own keys") \
        .add_subparsers(dest="action", required=True)
    settings.add_parser("show", help="the settings in force").set_defaults(func=cmd_settings_show)
    change = settings.add_parser("set", help="change some settings, leaving the others")
    change.add_argument("--signup", dest="signup_mode", choices=SIGNUP_MODES, help="who may sign up")
    change.add_argument("--invite-code", help="the code sign-up by invite asks for (6 characters or more)")
    change.add_argument("--starting-credit-usd", type=_usd(allow_negative=False), help="credit a new sign-up gets")
    for cap in CAPS:
        change.add_argument("--" + cap.replace("_", "-"), type=_whole, help="cap on users' own keys (0: none)")
    change.set_defaults(func=cmd_settings_set)
    accounts = commands.add_parser("accounts", help="manage upstream accounts").add_subparsers(
        dest="action", required=True)
    add_account = accounts.add_parser("add", help="add an upstream Anthropic account")
    add_account.add_argument("name")
    add_account.add_argument("--api-key", required=True)
    add_account.add_argument("--base-url", default=DEFAULT_BASE_URL)
    add_account.add_argument("--priority", type=_whole, default=0, help="higher tiers are used first")
    add_account.add_argument("--weight", type=_whole, default=1, help="share of load within a tier")
    add_account.add_argument("--rpm", type=_whole, help="this account's own requests per minute")
    add_account.add_argument("--concurrency", type=_whole, help="this account's own requests in flight")
    add_account.add_argument("--models", type=_model_list, help="comma-separated models it serves (default: all)")
    add_account.set_defaults(func=cmd_accounts_add)
    accounts.add_parser("list", help="accounts with health, cooldowns and load").set_defaults(func=cmd_accounts_list)
    for verb, enable in (("enable", True), ("disable", False)):
        toggle = accounts.add_parser(verb, help=f"{verb} an upstream account")
        toggle.add_argument("name")
        toggle.set_defaults(func=cmd_accounts_enable, enable=enable)
    return parser


SERVICES = {"serve", "sim", "demo", "migrate"}  # commands that log their progress; the others print results


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.command in SERVICES else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    try:
        args.func(args)
    except OperationError as error:
        print(f"ccgate: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
