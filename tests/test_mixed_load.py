"""Issue 13: 200 parallel mixed requests in both dialects (images by URL, long streams, client hang-ups, errors
mid-stream) from prepaid users with small balances and an overdraft: the floor holds and `ledger check` passes,
on one process, and on three workers with PostgreSQL and Redis, Redis stopped in the middle and started again."""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from harness import Gateway, Simulator
from helpers import admissions
from services import Deployment, RedisServer, wait_until

REQUESTS, AT_ONCE, TIME_LIMIT_S = 200, 16, 60
USERS, CREDIT_USD, OVERDRAFT_MICRO = 4, "0.15", 50_000
OVERDRAFT = {"CCGATE_DEFAULT_OVERDRAFT_USD": str(OVERDRAFT_MICRO / 1_000_000)}
IMAGE = "https://example.com/cat.png"  # the simulator counts an image by URL as 1,600 input tokens


@dataclass(frozen=True)
class Kind:
    """One sort of request in the mix."""

    name: str
    openai: bool
    stream: bool
    model: str = "claude-haiku-4-5"
    prompt: str = "hello"
    images: int = 0
    max_tokens: int = 256
    hang_up: bool = False


MIX = (
    Kind("anthropic images", openai=False, stream=False, images=3),
    Kind("anthropic long stream", openai=False, stream=True, model="claude-sonnet-4-6",
         prompt="write [[sim:tokens=3000]]", max_tokens=4000),
    Kind("anthropic hang-up", openai=False, stream=True, model="claude-sonnet-4-6",
         prompt="long [[sim:tokens=3000]]", max_tokens=4000, hang_up=True),
    Kind("anthropic error mid-stream", openai=False, stream=True, prompt="[[sim:fault=midstream-error]] hi"),
    Kind("openai images", openai=True, stream=False, images=2),
    Kind("openai long stream", openai=True, stream=True, model="claude-sonnet-4-6",
         prompt="write [[sim:tokens=3000]]", max_tokens=4000),
    Kind("openai hang-up", openai=True, stream=True, model="claude-sonnet-4-6",
         prompt="long [[sim:tokens=3000]]", max_tokens=4000, hang_up=True),
    Kind("openai reset mid-stream", openai=True, stream=True, prompt="[[sim:fault=midstream-reset]] hi"),
)


def body_of(kind: Kind) -> tuple[str, bytes]:
    """The route and JSON body of one request of this kind."""
    if kind.openai:
        parts = [{"type": "image_url", "image_url": {"url": IMAGE}}] * kind.images
        body = {"model": kind.model, "max_tokens": kind.max_tokens, "stream": kind.stream,
                "messages": [{"role": "user", "content": [*parts, {"type": "text", "text": kind.prompt}]}]}
        if kind.stream:
            body["stream_options"] = {"include_usage": True}
        return "/v1/chat/completions", json.dumps(body).encode()
    parts = [{"type": "image", "source": {"type": "url", "url": IMAGE}}] * kind.images
    return "/v1/messages", json.dumps({
        "model": kind.model, "max_tokens": kind.max_tokens, "stream": kind.stream,
        "messages": [{"role": "user", "content": [*parts, {"type": "text", "text": kind.prompt}]}]}).encode()


def send(gateway: Gateway, key: str, kind: Kind) -> tuple[int, str]:
    """(status, how it ended): complete, error (an error event or chunk), cut (the connection closed early),
    hung-up (we closed it), refused (an error status)."""
    path, body = body_of(kind)
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
    try:
        connection.request("POST", path, body=body, headers={"x-api-key": key, "authorization": f"Bearer {key}",
                                                             "content-type": "application/json"})
        response = connection.getresponse()
        if response.status != 200:
            response.read()
            return response.status, "refused"
        if kind.hang_up:
            response.read(600)
            return 200, "hung-up"
        try:
            text = response.read().decode()
        except (http.client.IncompleteRead, ConnectionError):
            return 200, "cut"
        if '"error":' in text.replace(" ", "") or "event: error" in text:
            return 200, "error"
        ended = "message_stop" in text or "[DONE]" in text if kind.stream else bool(json.loads(text))
        return 200, "complete" if ended else "cut"
    except (ConnectionError, http.client.HTTPException):
        return 0, "connection failed"
    finally:
        connection.close()


def started_with_prepaid_users(gateway: Gateway, sim: Simulator) -> list[str]:
    """Start the gateway with USERS users of CREDIT_USD each (the overdraft is the operator's default,
    OVERDRAFT_MICRO); their keys."""
    gateway.add_account("main", "sk-ant-load-" + uuid.uuid4().hex[:6], sim.url)
    keys = []
    for n in range(USERS):
        email = f"load{n}-{uuid.uuid4().hex[:6]}@example.com"
        gateway.new_user(email, "--credit-usd", CREDIT_USD)
        keys.append(gateway.new_key(email))
    gateway.start()
    return keys


def run_load(gateway: Gateway, keys: list[str], at_request: dict[int, Callable[[], None]] | None = None) -> Counter:
    """REQUESTS requests, AT_ONCE at a time, round-robin over the mix and the keys; `at_request[n]` runs
    (in its own thread) when the n-th request is sent.  Counts (kind, status, ending)."""
    at_request = at_request or {}
    deadline = time.monotonic() + TIME_LIMIT_S
    side: list[threading.Thread] = []

    def one(n: int) -> tuple[str, int, str]:
        if n in at_request:
            side.append(threading.Thread(target=at_request[n]))
            side[-1].start()
        kind = MIX[n % len(MIX)]
        if time.monotonic() > deadline:
            return kind.name, -1, "not sent: out of time"
        return (kind.name, *send(gateway, keys[(n + n // len(MIX)) % len(keys)], kind))  # every user, every kind

    with ThreadPoolExecutor(max_workers=AT_ONCE) as pool:
        outcomes = Counter(pool.map(one, range(REQUESTS)))
    for thread in side:
        thread.join(timeout=30)
    return outcomes


def settled(gateway: Gateway) -> None:
    """Wait until every request has written its usage row (abandoned streams settle after the client left)."""
    counts: list[int] = []

    def still() -> bool:
        counts.append(gateway.query("select count(*) from usage")[0][0])
        return len(counts) > 4 and counts[-1] == counts[-5]

    wait_until(still, timeout=20, interval=0.25)


def unstoppable_excess(gateway: Gateway) -> Counter:
    """Per user, what non-streaming requests cost beyond their hold: the one documented way past the floor
    (docs/billing.md: a whole answer is not cut, and images by URL make its input larger than expected)."""
    held = admissions(gateway.log_path)
    excess: Counter = Counter()
    for request_id, email, cost in gateway.query(
            "select u.request_id, s.email, u.cost_micro from usage u join users s on s.id = u.user_id "
            "where not u.streamed"):
        excess[email] += max(cost - (held[request_id].hold_micro or 0), 0) if request_id in held else 0
    return excess


def check_the_books(gateway: Gateway, outcomes: Counter, took: float, known_gap: str | None = None) -> None:
    """Every answer a 200 or a 402, the books balanced, and no balance past the floor by more than the
    non-streaming requests' surprise; `known_gap`: a documented way past it by up to one stream's hold,
    reported as an expected failure when it shows (everything else is checked first)."""
    settled(gateway)
    balances = gateway.query(f"select email, balance_micro, coalesce(overdraft_micro, {OVERDRAFT_MICRO}) "
                             "from users where email like %s", "load%")
    excess = unstoppable_excess(gateway)
    print(f"\n{sum(outcomes.values())} requests in {took:.1f}s:")
    for (kind, status, ending), count in sorted(outcomes.items()):
        print(f"  {count:3} x {kind}: {status} {ending}")
    for email, balance, overdraft in balances:
        print(f"  {email.split('-')[0]}: balance {balance} micro-USD, floor {-overdraft}, "
              f"non-streaming cost beyond holds {excess[email]}")
    assert sum(outcomes.values()) == REQUESTS and took < TIME_LIMIT_S + 30
    assert {status for _, status, _ in outcomes} <= {200, 402}, outcomes
    assert any(status == 402 for _, status, _ in outcomes), "the users ran out of credit"
    check = gateway.cli("ledger", "check", check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    crossed = {email: -overdraft - excess[email] - balance for email, balance, overdraft in balances
               if balance < -overdraft - excess[email]}
    if crossed and known_gap:
        held = admissions(gateway.log_path)
        streamed = [row[0] for row in gateway.query("select request_id from usage where streamed")]
        one_stream = max((held[request].hold_micro or 0) for request in streamed if request in held)
        assert max(crossed.values()) <= one_stream, f"past the floor by more than the known gap (one stream's " \
            f"hold, {one_stream} micro-USD): {crossed}"
        pytest.xfail(f"{known_gap}; crossed by {crossed} micro-USD")
    assert not crossed, f"the floor was crossed by more than the non-streaming requests' surprise: {crossed}"


def test_mixed_load_keeps_the_floor_and_the_books(tmp_path):
    """One process on SQLite (three workers on PostgreSQL and Redis in the suite's scaled run)."""
    sim = Simulator().start("--latency-ms", "0", "--ttft-ms", "0", "--tokens-per-sec", "10000")
    gateway = Gateway(tmp_path / "gateway", extra_env={"CCGATE_LOG_LEVEL": "DEBUG", **OVERDRAFT})
    try:
        keys = started_with_prepaid_users(gateway, sim)
        started = time.monotonic()
        outcomes = run_load(gateway, keys)
        check_the_books(gateway, outcomes, time.monotonic() - started)
    finally:
        gateway.stop()
        sim.stop()


def test_mixed_load_on_three_workers_with_redis_stopped_in_the_middle(tmp_path):
    sim = Simulator().start("--latency-ms", "0", "--ttft-ms", "0", "--tokens-per-sec", "10000")
    redis = RedisServer().start()
    env = {**Deployment.shared().gateway_env(), "CCGATE_REDIS_URL": redis.url, "CCGATE_LOG_LEVEL": "DEBUG",
           **OVERDRAFT}
    gateway = Gateway(tmp_path / "gateway", extra_env=env, workers=3)

    def restart_redis() -> None:
        redis.process = None
        redis.start()

    try:
        keys = started_with_prepaid_users(gateway, sim)
        started = time.monotonic()
        outcomes = run_load(gateway, keys, {REQUESTS // 2: redis.stop, REQUESTS * 4 // 5: restart_redis})
        check_the_books(gateway, outcomes, time.monotonic() - started, known_gap=(
            "docs/billing.md, 'Known gap': a process does not know what the others admitted through Redis "
            "just before it went away (in about 1 run of 10)"))
    finally:
        gateway.stop()
        redis.stop()
        sim.stop()
