"""Issue 2, done when: Claude Code pointed at `ccgate demo` with ANTHROPIC_BASE_URL and a ccgate key
answers a prompt.  The real Claude Code binary from the npm registry (scripts/test.sh installs it
into .tools/)."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess

import pytest

from harness import CCGATE, free_port, stop_process, wait_for_port
from helpers import claude_code


@pytest.fixture
def demo(tmp_path):
    port = free_port()
    log = tmp_path / "demo.out"
    process = subprocess.Popen([*CCGATE, "demo", "--port", str(port), "--data-dir", str(tmp_path / "data")],
                               env=os.environ,
                               stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    wait_for_port(port, process)
    key = re.search(r"Your demo key \(shown once\): (cc_user_\w+)", log.read_text()).group(1)
    yield f"http://127.0.0.1:{port}", key, tmp_path / "data" / "ccgate.sqlite3"
    stop_process(process)


def test_claude_code_answers_a_prompt_through_the_demo(demo, tmp_path):
    claude = claude_code()
    base_url, key, database = demo
    home = tmp_path / "home"
    home.mkdir()
    result = subprocess.run(
        [str(claude), "-p", "Say hello", "--model", "claude-sonnet-4-6"],
        env={"PATH": os.environ["PATH"], "HOME": str(home), "ANTHROPIC_BASE_URL": base_url,
             "ANTHROPIC_API_KEY": key, "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1"},
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Hello from the ccgate simulator. You said: Say hello" in result.stdout
    with sqlite3.connect(database) as db:
        rows = db.execute("select status, streamed, output_tokens, cost_micro from usage").fetchall()
    assert rows and all(status == 200 and streamed and cost > 0 for status, streamed, _, cost in rows)
