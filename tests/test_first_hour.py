"""Issue 16: a newcomer's first hour.  In Chromium, a stranger signs up (sign-up is open by default), makes a
key and calls the gateway with it; then every snippet /docs shows them is run exactly as pasted.

The only thing put into a snippet is the whole key, on the one line the page asks the reader to fill in
(`export YOUR_KEY=...`); every other snippet reads it from there.  The gateway's public URL is its real
address, so the base URL the page prints is where it listens.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import anthropic
import pytest

from ccgate.sim.generate import GREETING
from harness import Gateway
from helpers import CHROMIUM, CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = ROOT / ".tools" / "node_modules"
PASSWORD = "a long first password"
STARTING_CREDIT_USD = "5"

# What each snippet on /docs must print when run (the SDK examples print the simulator's reply); a snippet
# the page adds must be added here.
ANSWERS = {
    "curl-messages": r'"type":\s*"message"',
    "curl-chat": r'"object":\s*"chat.completion"',
    "curl-stream": r"event: message_stop",
    "key-status": r'"requests_last_minute"',
    "py-anthropic": re.escape(GREETING),
    "py-openai": re.escape(GREETING),
    "py-responses": re.escape(GREETING),
    "node-anthropic": re.escape(GREETING),
    "scaffold": re.escape(GREETING),
}
NOT_RUN = {
    "export-key": "it is the line every other snippet runs after",
    "claude-code": "it starts an interactive session; tests/test_claude_code.py points Claude Code at the gateway",
    "codex-config": "it is a config file, not a command; tests/test_responses.py runs Codex CLI with this provider",
    "codex-run": "it starts an interactive session; tests/test_responses.py runs `codex exec` through the gateway",
}


def missing(what: str) -> None:
    """Skip where a tool is not installed; fail under CI, where scripts/test.sh installs it."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is not installed (scripts/test.sh installs it)")
    pytest.skip(f"{what} is not installed (scripts/test.sh installs it)")


@pytest.fixture(scope="module")
def site(sim, tmp_path_factory):
    """A gateway of its own, with the default sign-up policy and starting credit for those who sign up."""
    gateway = Gateway(tmp_path_factory.mktemp("first-hour"))
    gateway.extra_env["CCGATE_PUBLIC_URL"] = gateway.url
    gateway.add_account("sim-main", "sk-ant-sim-main", sim.url)
    gateway.admin(lambda ops: ops.change_web_settings(starting_credit_usd=float(STARTING_CREDIT_USD)))
    gateway.start()
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        missing("Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def newcomer(browser, site):
    """A stranger who signed up and made a key in the browser: (page, key, seconds it took)."""
    context = browser.new_context(base_url=site.url)
    page = context.new_page()
    started = time.monotonic()
    page.goto("/docs")
    page.click("header >> text=Sign up")
    page.fill("input[name=email]", "newcomer@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=confirm]", PASSWORD)
    page.click("form.stack button")
    assert page.url.startswith(site.url + "/dashboard/keys"), page.url
    page.fill("input[name=name]", "first")
    page.click("button:has-text('Create key')")
    key = page.inner_text("#new-key").strip()
    site.wait_until_key_works(key)
    yield SimpleNamespace(page=page, key=key, seconds=time.monotonic() - started)
    context.close()


@pytest.fixture(scope="module")
def snippets(newcomer) -> dict[str, str]:
    """Every copyable snippet of /docs as the signed-in newcomer sees it, by id."""
    newcomer.page.goto("/docs")
    blocks = newcomer.page.locator(".docs .copyable pre")
    return {blocks.nth(i).get_attribute("id"): blocks.nth(i).inner_text() for i in range(blocks.count())}


def test_a_key_made_in_the_browser_answers_through_the_sdk(site, newcomer):
    client = anthropic.Anthropic(api_key=newcomer.key, base_url=site.url, max_retries=0)
    message = client.messages.create(model="claude-sonnet-4-6", max_tokens=64,
                                     messages=[{"role": "user", "content": "Hello, world!"}])
    assert message.content[0].text and message.usage.output_tokens > 0
    balance = client.get("/v1/key-status", cast_to=object)["credit"]["balance_usd"]
    assert 0 < balance < float(STARTING_CREDIT_USD), "the sign-up's starting credit paid for it"
    assert newcomer.seconds < 15


def test_the_docs_show_where_the_gateway_listens_and_every_snippet_is_known(site, newcomer, snippets):
    assert newcomer.page.inner_text("#base-url") == site.url
    assert set(snippets) == set(ANSWERS) | set(NOT_RUN)
    for name, text in snippets.items():
        for url in re.findall(r"https?://[^\s\"'/]+", text):
            assert url == site.url, f"{name} names {url}"


def shell_with_key(snippets: dict[str, str], key: str) -> str:
    """The page's `export YOUR_KEY=...` line with the whole key in place of the placeholder."""
    line = snippets["export-key"]
    assert re.fullmatch(r"export YOUR_KEY=\S+\s+# your whole key", line), line
    return re.sub(r"YOUR_KEY=\S+", f"YOUR_KEY={key}", line)


def run_as_pasted(name: str, snippet: str, export: str, directory: Path) -> subprocess.CompletedProcess:
    """Run a snippet the way its reader would: in bash after the export line; Python pasted into python3;
    Node saved as a module file next to the official SDK."""
    if name.startswith("py-"):
        script = f"{export}\npython3 - <<'SNIPPET'\n{snippet}\nSNIPPET\n"
    elif name.startswith("node-"):
        if not shutil.which("node") or not (NODE_MODULES / "@anthropic-ai" / "sdk").is_dir():
            missing("node with @anthropic-ai/sdk in .tools")
        (directory / "node_modules").symlink_to(NODE_MODULES)
        (directory / "haiku.mjs").write_text(snippet)
        script = f"{export}\nnode haiku.mjs\n"
    else:
        script = f"{export}\n{snippet}\n"
    # The reader's shell finds python3 and ccgate where this test's interpreter is (an activated venv).
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("YOUR_KEY", None)
    return subprocess.run(["bash", "-e", "-c", script], cwd=directory, env=env, capture_output=True, text=True,
                          timeout=180)


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_every_docs_snippet_runs_as_pasted(name, newcomer, snippets, tmp_path):
    result = run_as_pasted(name, snippets[name], shell_with_key(snippets, newcomer.key), tmp_path)
    assert result.returncode == 0, f"{name}: {result.stderr[-2000:]}"
    assert re.search(ANSWERS[name], result.stdout), f"{name} printed: {result.stdout[-2000:]}"
    if name.startswith("curl-") and name != "curl-stream":
        assert "error" not in json.loads(result.stdout)
