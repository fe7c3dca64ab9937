"""The `ccgate` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable

from ccgate.config import Settings
from ccgate.crypto import SecretBox
from ccgate.ops import DEFAULT_BASE_URL, Operations, OperationError
from ccgate.store.db import create_engine, migrate

DEMO_EMAIL = "demo@ccgate.local"
DEMO_ACCOUNT = "simulator"


def _with_operations(action: Callable[[Operations], Awaitable[None]]) -> None:
    """Migrate the database, then run one operation against it."""
    settings = Settings.from_env()
    migrate(settings.database_url)

    async def run() -> None:
        engine = create_engine(settings.database_url)
        try:
            await action(Operations(engine, SecretBox(settings.server_secret()), settings))
        finally:
            await engine.dispose()

    asyncio.run(run())


def _uvicorn_config(app, host: str, port: int):
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, loop="uvloop", http="httptools", lifespan="on",
                          log_level="warning", access_log=False, server_header=False)


# -- servers -------------------------------------------------------------------------------------

def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from ccgate.app import create_app

    settings = Settings.from_env()
    migrate(settings.database_url)
    print(f"ccgate listening on http://{args.host}:{args.port} (data: {settings.data_dir})", flush=True)
    uvicorn.Server(_uvicorn_config(create_app(settings), args.host, args.port)).run()


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
    migrate(settings.database_url)

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
        server = uvicorn.Server(_uvicorn_config(app, args.host, args.port))
        print(demo_instructions(f"http://{args.host}:{args.port}", key.plaintext), flush=True)
        try:
            await server.serve()
        finally:
            await runner.cleanup()

    asyncio.run(main())


def cmd_migrate(args: argparse.Namespace) -> None:
    settings = Settings.from_env()
    migrate(settings.database_url)
    print("database is at the newest schema")


# -- administration ------------------------------------------------------------------------------

def cmd_users_add(args: argparse.Namespace) -> None:
    async def action(ops: Operations) -> None:
        user_id = await ops.add_user(args.email, password=args.password, admin=args.admin)
        print(f"user {args.email} created (id {user_id}{', admin' if args.admin else ''})")

    _with_operations(action)


def cmd_keys_create(args: argparse.Namespace) -> None:
    async def action(ops: Operations) -> None:
        key = await ops.create_key(args.email, name=args.name)
        print(f"key {key.id} ({key.display}) created for {args.email}; it is shown once, below:", file=sys.stderr)
        print(key.plaintext)

    _with_operations(action)


def cmd_keys_list(args: argparse.Namespace) -> None:
    async def action(ops: Operations) -> None:
        for key in await ops.list_keys(args.email):
            state = "revoked" if key["revoked_ms"] else "active"
            print(f"{key['id']}  {key['display']}  {state:8}  {key['name']}")

    _with_operations(action)


def cmd_keys_revoke(args: argparse.Namespace) -> None:
    async def action(ops: Operations) -> None:
        await ops.revoke_key(args.key_id)
        print(f"key {args.key_id} revoked")

    _with_operations(action)


def cmd_accounts_add(args: argparse.Namespace) -> None:
    async def action(ops: Operations) -> None:
        await ops.add_account(args.name, args.api_key, base_url=args.base_url)
        print(f"account {args.name} added ({args.base_url})")

    _with_operations(action)


def cmd_accounts_list(args: argparse.Namespace) -> None:
    async def action(ops: Operations) -> None:
        for account in await ops.list_accounts():
            state = "enabled" if account["enabled"] else f"disabled: {account['disabled_reason'] or 'by operator'}"
            print(f"{account['name']}  {account['base_url']}  {state}")

    _with_operations(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ccgate", description="Self-hosted API gateway for Claude.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
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

    users = commands.add_parser("users", help="manage users").add_subparsers(dest="action", required=True)
    add_user = users.add_parser("add", help="add a user")
    add_user.add_argument("email")
    add_user.add_argument("--password")
    add_user.add_argument("--admin", action="store_true")
    add_user.set_defaults(func=cmd_users_add)

    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(dest="action", required=True)
    create = keys.add_parser("create", help="create a key; it is printed once, alone on the last line")
    create.add_argument("email")
    create.add_argument("--name", default="")
    create.set_defaults(func=cmd_keys_create)
    listing = keys.add_parser("list", help="list a user's keys")
    listing.add_argument("email")
    listing.set_defaults(func=cmd_keys_list)
    revoke = keys.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key_id")
    revoke.set_defaults(func=cmd_keys_revoke)

    accounts = commands.add_parser("accounts", help="manage upstream accounts").add_subparsers(
        dest="action", required=True)
    add_account = accounts.add_parser("add", help="add an upstream Anthropic account")
    add_account.add_argument("name")
    add_account.add_argument("--api-key", required=True)
    add_account.add_argument("--base-url", default=DEFAULT_BASE_URL)
    add_account.set_defaults(func=cmd_accounts_add)
    accounts.add_parser("list", help="list upstream accounts").set_defaults(func=cmd_accounts_list)
    return parser


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except OperationError as error:
        print(f"ccgate: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
