'''`ccgate scaffold`: a small client project for one key, written locally.

It replaces the seed's "pipe a remote script into a shell" setup: nothing is downloaded
here, and the project's own install step fetches only the official SDK from the package
registry.  The key goes into `.env` (mode 0600, and listed in `.gitignore`), never into code.
'''

from __future__ import annotations

import os
from pathlib import Path

LANGUAGES = ("python", "node")
DEFAULT_MODEL = "claude-sonnet-4-6"
KEY_PLACEHOLDER = "put-your-gateway-key-here"


class ScaffoldError(Exception):
    """The project was not written; nothing was changed."""


def dotenv(key: str | None, base_url: str, model: str) -> str:
    return (
        "# Read by the examples. It holds your key: keep it out of version control (.gitignore lists it).\n"
        f"ANTHROPIC_API_KEY={key or KEY_PLACEHOLDER}\n"
        f"ANTHROPIC_BASE_URL={base_url}\n"
        f"ANTHROPIC_MODEL={model}\n"
    )


PYTHON_ENV = '''"""Reads .env beside this file into the environment (variables already set win) and checks the key."""

import os
import sys
from pathlib import Path

PLACEHOLDER = "put-your-gateway-key-here"


def load() -> str:
    """The model to use, once the key and base URL are in the environment for the SDK."""
    for line in (Path(__file__).parent / ".env").read_text().splitlines():
        name, equals, value = line.partition("=")
        if equals and not line.lstrip().startswith("#"):
            os.environ.setdefault(name.strip(), value.strip())
    if os.environ.get("ANTHROPIC_API_KEY", PLACEHOLDER) == PLACEHOLDER:
        sys.exit("Put your gateway key in .env first (ANTHROPIC_API_KEY=...).")
    return os.environ.get("ANTHROPIC_MODEL", "claude-sonnet-4-6")
'''

PYTHON_STREAM = '''"""Streams an answer through the gateway, printing the text as it arrives."""

import anthropic

import gateway_env

model = gateway_env.load()
client = anthropic.Anthropic()  # takes ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL from the environment

with client.messages.stream(
    model=model,
    max_tokens=512,
    messages=[{"role": "user", "content": "Write a haiku about gateways."}],
) as stream:
    for text in stream.text_stream:
        print(text, end="", flush=True)
    message = stream.get_final_message()

usage = message.usage
print(f"\\n\\n[{usage.input_tokens} tokens in, {usage.output_tokens} out; request id {stream.request_id}]")
'''

PYTHON_TOOLS = '''"""One tool-use conversation: Claude asks for the weather, this program answers, Claude replies."""

import json

import anthropic

import gateway_env

TOOLS = [{
    "name": "get_weather",
    "description": "The current weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "the city, e.g. Tokyo"}},
        "required": ["city"],
    },
}]
MAX_ROUNDS = 5


def get_weather(city: str) -> dict:
    """A stand-in for a real weather service."""
    return {"city": city, "temperature_c": 21, "sky": "clear"}


model = gateway_env.load()
client = anthropic.Anthropic()
messages = [{"role": "user", "content": "What's the weather in Tokyo?"}]
reply = client.messages.create(model=model, max_tokens=1024, tools=TOOLS, messages=messages)
for _ in range(MAX_ROUNDS):
    if reply.stop_reason != "tool_use":
        break
    messages.append({"role": "assistant", "content": reply.content})
    results = []
    for block in reply.content:
        if block.type == "tool_use":
            print(f"Claude calls {block.name}({json.dumps(block.input)})")
            answer = get_weather(str(block.input.get("city", "")))
            results.append({"type": "tool_result", "tool_use_id": block.id, "content": json.dumps(answer)})
    messages.append({"role": "user", "content": results})
    reply = client.messages.create(model=model, max_tokens=1024, tools=TOOLS, messages=messages)

print("".join(block.text for block in reply.content if block.type == "text"))
'''

NODE_STREAM = '''// Streams an answer through the gateway, printing the text as it arrives.
import Anthropic from "@anthropic-ai/sdk";
import { model } from "./gateway-env.mjs";

const client = new Anthropic(); // takes ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL from the environment

const stream = client.messages.stream({
  model,
  max_tokens: 512,
  messages: [{ role: "user", content: "Write a haiku about gateways." }],
});
for await (const event of stream) {
  if (event.type === "content_block_delta" && event.delta.type === "text_delta") {
    process.stdout.write(event.delta.text);
  }
}
const message = await stream.finalMessage();
console.log(`\\n\\n[${message.usage.input_tokens} tokens in, ${message.usage.output_tokens} out]`);
'''

NODE_TOOLS = '''// One tool-use conversation: Claude asks for the weather, this program answers, Claude replies.
import Anthropic from "@anthropic-ai/sdk";
import { model } from "./gateway-env.mjs";

const tools = [{
  name: "get_weather",
  description: "The current weather in a city",
  input_schema: {
    type: "object",
    properties: { city: { type: "string", description: "the city, e.g. Tokyo" } },
    required: ["city"],
  },
}];
const MAX_ROUNDS = 5;

// A stand-in for a real weather service.
function getWeather(city) {
  return { city, temperature_c: 21, sky: "clear" };
}

const client = new Anthropic();
const messages = [{ role: "user", content: "What's the weather in Tokyo?" }];
let reply = await client.messages.create({ model, max_tokens: 1024, tools, messages });
for (let round = 0; round < MAX_ROUNDS && reply.stop_reason === "tool_use"; round++) {
  messages.push({ role: "assistant", content: reply.content });
  const results = reply.content
    .filter((block) => block.type === "tool_use")
    .map((block) => {
      console.log(`Claude calls ${block.name}(${JSON.stringify(block.input)})`);
      const answer = getWeather(String(block.input.city ?? ""));
      return { type: "tool_result", tool_use_id: block.id, content: JSON.stringify(answer) };
    });
  messages.push({ role: "user", content: results });
  reply = await client.messages.create({ model, max_tokens: 1024, tools, messages });
}
console.log(reply.content.filter((block) => block.type === "text").map((block) => block.text).join(""));
'''

NODE_ENV = '''// Checks the key that `node --env-file=.env` put in the environment, and names the model.
const PLACEHOLDER = "put-your-gateway-key-here";

if ((process.env.ANTHROPIC_API_KEY ?? PLACEHOLDER) === PLACEHOLDER) {
  console.error("Put your gateway key in .env first (ANTHROPIC_API_KEY=...).");
  process.exit(1);
}
export const model = process.env.ANTHROPIC_MODEL ?? "claude-sonnet-4-6";
'''


def package_json(name: str) -> str:
    return f'''{{
  "name": "{name}",
  "private": true,
  "type": "module",
  "scripts": {{
    "stream": "node --env-file=.env stream.mjs",
    "tools": "node --env-file=.env tools.mjs"
  }},
  "dependencies": {{
    "@anthropic-ai/sdk": "^1.10.0"
  }},
  "engines": {{
    "node": ">=20.6"
  }}
}}
'''


def readme(lang: str, base_url: str, has_key: bool) -> str:
    install, stream, tools = {
        "python": ("python3 -m venv .venv && .venv/bin/pip install -r requirements.txt",
                   ".venv/bin/python stream.py", ".venv/bin/python tools.py"),
        "node": ("npm install", "npm run stream", "npm run tools"),
    }[lang]
    key_step = "" if has_key else "\n0. Put your gateway key in `.env` (`ANTHROPIC_API_KEY=...`).\n"
    return f'''# A Claude client through ccgate

Written by `ccgate scaffold`. It talks to the gateway at {base_url} with the official
Anthropic SDK; `.env` holds the key, the base URL and the model, and the examples read them
from there. `.env` is in `.gitignore`: never commit your key.
{key_step}
1. Install the SDK (the only download): `{install}`
2. Stream an answer: `{stream}`
3. Let Claude call a tool: `{tools}`

Every answer has a request id; your dashboard's Usage page lists it with its tokens and cost.
The OpenAI SDK works too, with the base URL plus `/v1`.
'''


def project_files(lang: str, *, name: str, key: str | None, base_url: str,
                  model: str = DEFAULT_MODEL) -> dict[str, str]:
    """The project's files, by path relative to its directory."""
    if lang not in LANGUAGES:
        raise ScaffoldError(f"--lang is one of {', '.join(LANGUAGES)}")
    if not base_url.startswith(("http://", "https://")):
        raise ScaffoldError(f"the base URL must start with http:// or https://: {base_url!r}")
    base_url = base_url.rstrip("/")
    shared = {".env": dotenv(key, base_url, model), "README.md": readme(lang, base_url, key is not None)}
    if lang == "python":
        return {**shared, ".gitignore": ".env\n.venv/\n__pycache__/\n", "requirements.txt": "anthropic>=0.40\n",
                "gateway_env.py": PYTHON_ENV, "stream.py": PYTHON_STREAM, "tools.py": PYTHON_TOOLS}
    return {**shared, ".gitignore": ".env\nnode_modules/\n", "package.json": package_json(name),
            "gateway-env.mjs": NODE_ENV, "stream.mjs": NODE_STREAM, "tools.mjs": NODE_TOOLS}


def npm_name(directory: Path) -> str:
    """A package name npm accepts, made from the directory's name."""
    cleaned = "".join(c if c.isalnum() or c in "-._" else "-" for c in directory.resolve().name.lower())
    return cleaned.strip("-._") or "claude-client"


def scaffold(directory: Path, lang: str, *, key: str | None, base_url: str) -> list[Path]:
    """Write the project into `directory` (created if needed); refuses to overwrite any file."""
    files = project_files(lang, name=npm_name(directory), key=key, base_url=base_url)
    clashes = sorted(name for name in files if (directory / name).exists())
    if clashes:
        raise ScaffoldError(f"{directory} already has {', '.join(clashes)}; choose an empty directory")
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in files.items():
        path = directory / name
        mode = 0o600 if name == ".env" else 0o644
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "w") as handle:
            handle.write(content)
        written.append(path)
    return written
