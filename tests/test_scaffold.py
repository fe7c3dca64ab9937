"""Issue 7: `ccgate scaffold` writes a client project that runs against the gateway as written."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys

import pytest

from helpers import usage_of


def run_example(project, script: str) -> subprocess.CompletedProcess:
    """Run an example the way its README says, in an environment with no Anthropic settings of its own."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("ANTHROPIC_")}
    return subprocess.run([sys.executable, script], cwd=project, env=env, capture_output=True, text=True, timeout=60)


def test_python_project_streams_and_calls_a_tool_through_the_gateway(gateway, api_key, tmp_path):
    project = tmp_path / "my-claude-app"
    gateway.cli("scaffold", str(project), "--lang", "python", "--key", api_key, "--base-url", gateway.url)

    streamed = run_example(project, "stream.py")
    assert streamed.returncode == 0, streamed.stderr
    assert "Hello from the ccgate simulator" in streamed.stdout
    request_id = re.search(r"request id (req_\w+)", streamed.stdout).group(1)
    usage = usage_of(gateway, api_key, request_id)
    assert usage["streamed"] is True and usage["output_tokens"] > 0

    tools = run_example(project, "tools.py")
    assert tools.returncode == 0, tools.stderr
    assert "Claude calls get_weather(" in tools.stdout
    assert "The tool returned" in tools.stdout and '"temperature_c": 21' in tools.stdout


def test_the_key_lives_only_in_a_private_ignored_env_file(gateway, tmp_path):
    project = tmp_path / "app"
    key = "cc_user_" + "k" * 40
    gateway.cli("scaffold", str(project), "--key", key, "--base-url", "https://gw.example.com/")
    env_file = project / ".env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert f"ANTHROPIC_API_KEY={key}\n" in env_file.read_text()
    assert "ANTHROPIC_BASE_URL=https://gw.example.com\n" in env_file.read_text()
    assert ".env" in (project / ".gitignore").read_text().splitlines()
    others = [path for path in project.iterdir() if path.name != ".env"]
    assert others and all(key not in path.read_text() for path in others)
    assert (project / "requirements.txt").read_text().split() == ["anthropic>=0.40"]


def test_without_a_key_the_examples_say_what_to_do(gateway, tmp_path):
    project = tmp_path / "app"
    gateway.cli("scaffold", str(project), "--base-url", gateway.url)
    result = run_example(project, "stream.py")
    assert result.returncode != 0
    assert "Put your gateway key in .env" in result.stderr


def test_an_existing_project_is_never_overwritten(gateway, tmp_path):
    project = tmp_path / "app"
    project.mkdir()
    (project / "README.md").write_text("mine")
    result = gateway.cli("scaffold", str(project), "--key", "cc_user_x", check=False)
    assert result.returncode == 2 and "README.md" in result.stderr
    assert (project / "README.md").read_text() == "mine"
    assert [path.name for path in project.iterdir()] == ["README.md"]


def test_node_project_asks_npm_for_the_official_sdk_only(gateway, tmp_path):
    project = tmp_path / "Node App"
    gateway.cli("scaffold", str(project), "--lang", "node", "--key", "cc_user_x", "--base-url", gateway.url)
    package = json.loads((project / "package.json").read_text())
    assert package["name"] == "node-app"
    assert list(package["dependencies"]) == ["@anthropic-ai/sdk"]
    assert package["scripts"] == {
        "stream": "node --env-file=.env stream.mjs", "tools": "node --env-file=.env tools.mjs"}
    assert "ANTHROPIC_API_KEY=cc_user_x" in (project / ".env").read_text()
    readme = (project / "README.md").read_text()
    assert "npm install" in readme and "| sh" not in readme and "iex" not in readme
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the examples' syntax is not checked")
    for script in ("stream.mjs", "tools.mjs", "gateway-env.mjs"):
        check = subprocess.run(["node", "--check", str(project / script)], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
