"""Issue 13, point 3, shown with the real Claude Code CLI through ccgate: prepaid users work whole sessions with
requests at once, and a token budget is used to the end before the first refusal.

Each request's hold comes from the gateway's own admission (its debug log line "admitted ..."), its real
cost from its usage row; the test prints both, with what the old worst-case admission held, for the docs.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import SCALED, Gateway, Simulator
from helpers import admissions, catalog_price, claude_code, key_status, old_worst_case_hold

# Output per turn (the simulator writes that many tokens when the prompt says [[sim:tokens=N]]): a few
# hundred to a few thousand, as Claude Code's answers run; the turns run three at once write the most.
OUTPUT = {1: 800, 2: 2500, 3: 600, 4: 1200, 5: 2500, 6: 500, 7: 900, 8: 1500, 9: 2500, 10: 700}
AT_ONCE = {2: 3, 5: 3, 9: 3}  # the session plus two forks of it, like subagents sharing its prefix


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Gateway]:
    """A simulator streaming 4,000 tokens a second (so requests run at once overlap) and a gateway
    logging its admissions."""
    base = tmp_path_factory.mktemp("claude-billing")
    sim = Simulator().start("--latency-ms", "0", "--ttft-ms", "0", "--tokens-per-sec", "4000")
    gateway = Gateway(base / "gateway", extra_env={"CCGATE_LOG_LEVEL": "DEBUG"})
    gateway.add_account("main", "sk-ant-cc-" + uuid.uuid4().hex[:6], sim.url)
    gateway.start()
    yield gateway
    gateway.stop()
    sim.stop()


@dataclass
class ClaudeCode:
    """`claude -p` as a user runs it: its own HOME and project directory, pointed at the gateway."""

    binary: Path
    gateway: Gateway
    key: str
    home: Path

    def run(self, prompt: str, model: str, *session: str) -> subprocess.CompletedProcess:
        project = self.home / "project"
        project.mkdir(parents=True, exist_ok=True)
        env = {"PATH": os.environ["PATH"], "HOME": str(self.home), "ANTHROPIC_BASE_URL": self.gateway.url,
               "ANTHROPIC_API_KEY": self.key, "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
               "DISABLE_AUTOUPDATER": "1"}
        return subprocess.run([str(self.binary), "-p", prompt, "--model", model, *session], env=env, cwd=project,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)


def user_with_credit(gateway: Gateway, credit_usd: str, tmp_path: Path, *key_options: str) -> ClaudeCode:
    email = f"cc-{uuid.uuid4().hex[:6]}@example.com"
    gateway.new_user(email, "--credit-usd", credit_usd)
    return ClaudeCode(claude_code(), gateway, gateway.new_key(email, *key_options), tmp_path / email)


def work_a_session(claude: ClaudeCode, model: str) -> list[subprocess.CompletedProcess]:
    """Ten turns of one session; on the turns of AT_ONCE, forks of it run alongside."""
    session = str(uuid.uuid4())
    runs = [claude.run(f"turn 1 [[sim:tokens={OUTPUT[1]}]]", model, "--session-id", session)]
    for turn in range(2, 11):
        prompt = f"turn {turn} [[sim:tokens={OUTPUT[turn]}]]"
        forks = [("--resume", session, "--fork-session")] * (AT_ONCE.get(turn, 1) - 1)
        with ThreadPoolExecutor(max_workers=len(forks) + 1) as pool:
            runs += pool.map(lambda args, prompt=prompt: claude.run(prompt, model, *args),
                             [("--resume", session), *forks])
    return runs


@dataclass
class Request:
    """One request of the session as admission and settlement saw it."""

    body_bytes: int
    max_tokens: int
    hold_micro: int
    cost_micro: int
    started_ms: int
    ended_ms: int


def requests_of(gateway: Gateway, key: str) -> list[Request]:
    """The key's requests in order, each with its admission hold (from the gateway's log) and its debit."""
    admitted = admissions(gateway.log_path)
    rows = gateway.query("select request_id, cost_micro, created_ms, latency_ms, status from usage "
                         "where key_id = %s order by created_ms", key_status(gateway, key)["id"])
    assert all(status == 200 for *_, status in rows), rows
    return [Request(admitted[rid].body_bytes, admitted[rid].max_tokens, admitted[rid].hold_micro or 0, cost, start,
                    start + took) for rid, cost, start, took, _ in rows]


def most_at_once(requests: list[Request]) -> int:
    """The most requests in flight at the same moment."""
    edges = sorted([(r.started_ms, 1) for r in requests] + [(r.ended_ms, -1) for r in requests])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def print_holds(model: str, requests: list[Request]) -> None:
    """The before/after table the closing note quotes: old worst-case hold, new hold, real cost."""
    price = catalog_price(model)
    print(f"\n{model}: request | body bytes | max_tokens | old hold | new hold | real cost")
    for number, request in enumerate(requests, 1):
        old = old_worst_case_hold(request.body_bytes, price, request.max_tokens)
        print(f"  {number:2} | {request.body_bytes:7} | {request.max_tokens:6} | ${old / 1e6:.3f} "
              f"| ${request.hold_micro / 1e6:.3f} | ${request.cost_micro / 1e6:.3f}")
    print(f"  total debited ${sum(r.cost_micro for r in requests) / 1e6:.3f}")


@pytest.mark.parametrize(("model", "credit_usd"), [("claude-sonnet-4-6", "1"), ("claude-opus-4-6", "2")])
def test_a_prepaid_user_works_a_ten_turn_session_with_requests_at_once(stack, tmp_path, capsys, model, credit_usd):
    claude = user_with_credit(stack, credit_usd, tmp_path)
    runs = work_a_session(claude, model)
    assert [run.returncode for run in runs] == [0] * len(runs), [run.stdout[-300:] for run in runs if run.returncode]
    assert all(run.stdout.strip() for run in runs), "every turn answered"
    requests = requests_of(stack, claude.key)
    assert len(requests) == len(runs) == 16, "one request a turn, no 402 and no retry"
    assert most_at_once(requests) >= 3
    assert sum(r.cost_micro for r in requests) <= int(credit_usd) * 1_000_000
    with capsys.disabled():
        print_holds(model, requests)


@pytest.mark.xfail(SCALED, strict=False, reason=(
    "the estimator learns per process: on three workers a turn that lands on a worker new to the key is "
    "reserved at the defaults (all input a cache write, ~46,000 tokens of a 150 KB body) and refused at ~60% "
    "of the budget; it needs the key's history shared through Redis"))
def test_a_claude_code_key_uses_its_token_budget_before_its_first_refusal(stack, tmp_path, capsys):
    budget = 60_000
    email = f"budget-{uuid.uuid4().hex[:6]}@example.com"
    key = stack.new_key(email, "--token-budget", str(budget), "--window", "5h")
    claude = ClaudeCode(claude_code(), stack, key, tmp_path / "home")
    session, turns = str(uuid.uuid4()), 0
    refused = None
    while turns < 30 and refused is None:
        turns += 1
        run = claude.run(f"turn {turns} [[sim:tokens=1000]]", "claude-sonnet-4-6",
                         *(("--session-id", session) if turns == 1 else ("--resume", session)))
        refused = None if run.returncode == 0 else run
    assert refused is not None, "the budget ran out within 30 turns"
    used = key_status(stack, key)["budget"]["used_tokens"]
    rows = stack.query("select input_tokens + output_tokens + cache_write_5m_tokens + cache_write_1h_tokens, status "
                       "from usage where key_id = %s", key_status(stack, key)["id"])
    assert used == sum(tokens for tokens, status in rows if status == 200)
    said = refused.stdout + refused.stderr
    with capsys.disabled():
        print(f"\ntoken budget {budget}: {used} used ({used / budget:.1%}) in {turns - 1} turns, then refused")
        print(f"the refusal Claude Code shows: {said.strip()[-400:]}")
    assert used >= 0.95 * budget
    assert "429" in said and ("Resets in" in said or "can never fit" in said), said[-500:]
