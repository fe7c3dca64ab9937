"""`ccgate demo`: the gateway and the simulator, on a data directory of their own, with a demo user,
a demo key and an operator login."""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
from pathlib import Path
from typing import Any

from ccgate.cli.common import command
from ccgate.cli.listen import check_port_free, listen_url, migrate_in_child, uvicorn_options
from ccgate.config import Settings
from ccgate.ops import OperationError, Operations

DEMO_DATA_DIR = "./ccgate-demo"
DEMO_EMAIL = "demo@ccgate.local"
ADMIN_EMAIL = "admin@ccgate.local"
DEMO_ACCOUNT = "simulator"
DEMO_CREDIT_USD = 5.0
# What the demo must not inherit from the environment of a real deployment: its data, its secret, its shared state.
REAL_DEPLOYMENT = ("CCGATE_DATABASE_URL", "CCGATE_SECRET", "CCGATE_REDIS_URL", "CCGATE_WORKERS")


def isolate(data_dir: Path, public_url: str) -> None:
    """Point this process (and its migration child) at the demo's own data, never the real one."""
    for name in REAL_DEPLOYMENT:
        os.environ.pop(name, None)
    os.environ["CCGATE_DATA_DIR"] = str(data_dir)
    os.environ["CCGATE_PUBLIC_URL"] = public_url


def demo_instructions(base_url: str, key: str, admin_password: str, data_dir: Path) -> str:
    """What the demo prints: where to go, how to sign in, and snippets that run as pasted."""
    return f"""
ccgate demo is running: the gateway at {base_url}, answered by the built-in simulator.
Its data is in {data_dir} (never the data of `ccgate serve`); delete it to start afresh.

Dashboard: {base_url}/login  (sign-ups get ${DEMO_CREDIT_USD:.2f} of credit; API docs at {base_url}/docs)
Operator console: {base_url}/console  login {ADMIN_EMAIL}, password (shown once): {admin_password}

Your demo key (shown once): {key}

curl:
curl {base_url}/v1/messages \\
  -H "x-api-key: {key}" -H "anthropic-version: 2023-06-01" -H "content-type: application/json" \\
  -d '{{"model":"claude-sonnet-4-6","max_tokens":512,"messages":[{{"role":"user","content":"Hello, world!"}}]}}'

Python, Anthropic SDK (pip install anthropic):
import anthropic
client = anthropic.Anthropic(api_key="{key}", base_url="{base_url}")
message = client.messages.create(model="claude-sonnet-4-6", max_tokens=512,
                                 messages=[{{"role": "user", "content": "Hello"}}])
print(message.content[0].text)

Python, OpenAI SDK (pip install openai):
import openai
client = openai.OpenAI(api_key="{key}", base_url="{base_url}/v1")
reply = client.chat.completions.create(model="claude-sonnet-4-6", max_tokens=512,
                                       messages=[{{"role": "user", "content": "Hello"}}])
print(reply.choices[0].message.content)

Claude Code:
ANTHROPIC_BASE_URL={base_url} ANTHROPIC_API_KEY={key} claude

Usage of any request: curl {base_url}/v1/usage/<request-id> -H "x-api-key: {key}"
Press Ctrl-C to stop.
""".strip()


async def prepare(ops: Operations, sim_url: str) -> tuple[str, str]:
    """The demo user (prepaid), the simulator account, a fresh key and a fresh operator password."""
    try:
        await ops.user(DEMO_EMAIL)
    except OperationError:
        await ops.add_user(DEMO_EMAIL, credit_usd=DEMO_CREDIT_USD)
    admin_password = secrets.token_urlsafe(12)
    try:
        await ops.set_password(ADMIN_EMAIL, admin_password)
    except OperationError:
        await ops.add_user(ADMIN_EMAIL, password=admin_password, admin=True)
    await ops.change_web_settings(starting_credit_usd=DEMO_CREDIT_USD)
    try:
        await ops.add_account(DEMO_ACCOUNT, "sk-ant-sim-demo", base_url=sim_url)
    except OperationError:
        await ops.update_account(DEMO_ACCOUNT, base_url=sim_url, enabled=True, disabled_reason=None)
    key = await ops.create_key(DEMO_EMAIL, name="demo")
    return key.plaintext, admin_password


def demo(args: argparse.Namespace) -> None:
    import uvicorn

    from ccgate.app import create_app
    from ccgate.sim.config import SimConfig
    from ccgate.sim.server import start_sim

    data_dir = Path(args.data_dir).resolve()
    base_url = listen_url(args.host, args.port)
    isolate(data_dir, base_url)
    check_port_free(args.host, args.port)
    settings = Settings.from_env()
    migrate_in_child()

    async def main() -> None:
        runner, sim_port = await start_sim("127.0.0.1", args.sim_port, SimConfig())
        app = create_app(settings)
        key, admin_password = await prepare(app.state.gateway.ops, f"http://127.0.0.1:{sim_port}")
        server = uvicorn.Server(uvicorn.Config(app, **uvicorn_options(args.host, args.port)))
        print(demo_instructions(base_url, key, admin_password, data_dir), flush=True)
        try:
            await server.serve()
        finally:
            await runner.cleanup()

    asyncio.run(main())


def register(commands: Any) -> None:
    parser = command(commands, "demo", demo, "run the gateway and the simulator with a demo user and key, "
                                             "on a data directory of their own")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--sim-port", type=int, default=0)
    parser.add_argument("--data-dir", default=DEMO_DATA_DIR,
                        help=f"the demo's own data (default: {DEMO_DATA_DIR}; never CCGATE_DATA_DIR)")
