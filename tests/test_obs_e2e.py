"""Issue 15, end to end: a real gateway under a bounded mixed load, seen through /metrics, the access log,
OTLP traces and alert webhooks, each checked against what the requests it made say should be there."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import time
import urllib.request
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from harness import Gateway, Simulator
from helpers import Receiver, message_body, raw, scrape, series_sum
from services import RedisServer, wait_until

MODEL = "claude-haiku-4-5-20251001"
ACCOUNT_KEYS = {"acct-a": "sk-ant-e2e-a-" + uuid.uuid4().hex[:8], "acct-b": "sk-ant-e2e-b-" + uuid.uuid4().hex[:8],
                "acct-bad": "sk-ant-e2e-bad-" + uuid.uuid4().hex[:8]}
WEBHOOK_SECRET = "whsec-" + uuid.uuid4().hex
ROUTES = {"/v1/messages": ("messages", "anthropic"), "/v1/chat/completions": ("chat_completions", "openai")}


@dataclass
class Sent:
    """One request the load made and what its client saw."""

    path: str
    stream: bool
    status: int
    request_id: str
    cache: str | None
    prompt_marker: str
    reply_marker: str

    @property
    def route(self) -> str:
        return ROUTES[self.path][0]

    @property
    def dialect(self) -> str:
        return ROUTES[self.path][1]

    @property
    def cache_outcome(self) -> str | None:
        """The cache lookup it made: none when admission refused it (though X-Cache says MISS then)."""
        return None if self.status in (401, 429) else self.cache


@dataclass
class Load:
    """Everything the load left behind, for the tests below to check."""

    gateway: Gateway
    sim: Simulator
    keys: dict[str, str]
    sent: list[Sent] = field(default_factory=list)
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)
    in_flight_seen: float = 0.0
    sim_before: dict = field(default_factory=dict)
    sim_after: dict = field(default_factory=dict)
    posts_by_key: Counter[str] = field(default_factory=Counter)

    def delta(self, name: str, **labels: str) -> float:
        return series_sum(self.after, name, **labels) - series_sum(self.before, name, **labels)


def body_for(path: str, marker: str, reply: str, *, stream: bool, max_tokens: int = 32) -> bytes:
    text = f"{marker} [[sim:reply={reply}]]"
    if path == "/v1/messages":
        return message_body(MODEL, max_tokens, text, stream=stream)
    return json.dumps({"model": MODEL, "max_tokens": max_tokens, "stream": stream,
                       "messages": [{"role": "user", "content": text}]}).encode()


def send(gateway: Gateway, key: str, path: str, *, stream: bool = False, repeat_of: tuple[str, str] | None = None,
         **headers: str) -> Sent:
    marker, reply = repeat_of or (f"PROMPT{uuid.uuid4().hex}", f"REPLY{uuid.uuid4().hex}")
    auth = {"x-api-key": key} if path == "/v1/messages" else {"authorization": f"Bearer {key}"}
    status, response_headers, payload = raw(
        gateway, "POST", path, body=body_for(path, marker, reply, stream=stream),
        headers={"content-type": "application/json", "anthropic-version": "2023-06-01", **auth, **headers})
    if status == 200:
        text = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        assert reply.encode() in text, text[:300]
    return Sent(path, stream, status, response_headers["request-id"], response_headers.get("x-cache"), marker, reply)


def abandon_stream(load: Load) -> Sent:
    """A stream the client walks away from after its first bytes; meanwhile /metrics shows it in flight."""
    marker = f"PROMPT{uuid.uuid4().hex}"
    connection = http.client.HTTPConnection("127.0.0.1", load.gateway.port, timeout=10)
    connection.request("POST", "/v1/messages", body=message_body(MODEL, 10000, f"{marker} [[sim:tokens=8000]]",
                                                                 stream=True),
                       headers={"x-api-key": load.keys["main"], "content-type": "application/json"})
    response = connection.getresponse()
    assert response.status == 200
    response.read1(64)
    wait_until(lambda: series_sum(scrape(load.gateway), "ccgate_account_in_flight") >= 1, timeout=5)
    load.in_flight_seen = series_sum(scrape(load.gateway), "ccgate_account_in_flight")
    request_id = response.getheader("request-id")
    connection.close()
    return Sent("/v1/messages", True, 200, request_id, response.getheader("x-cache"), marker, "")


def admin_api(gateway: Gateway, key: str, method: str, path: str, payload: dict) -> dict:
    status, _, answer = raw(gateway, method, "/admin/api" + path, body=json.dumps(payload).encode(),
                            headers={"x-api-key": key, "content-type": "application/json"})
    assert status == 201, answer
    return answer


def admin_key(gateway: Gateway) -> str:
    """An admin's key, made as the CLI makes it before the gateway starts (the rest goes through the admin API)."""
    return gateway.new_key(gateway.new_user("root@e2e.test", "--admin"))


def add_accounts(gateway: Gateway, key: str, sim: Simulator, **priorities: int) -> None:
    for name, priority in priorities.items():
        admin_api(gateway, key, "POST", "/accounts", {"name": name, "api_key": ACCOUNT_KEYS[name],
                                                      "base_url": sim.url, "priority": priority})
    gateway.wait_reload()


def account_enabled(gateway: Gateway, key: str, name: str) -> bool:
    status, _, listed = raw(gateway, "GET", "/admin/api/accounts", headers={"x-api-key": key})
    assert status == 200, listed
    return next(account for account in listed if account["name"] == name)["enabled"]


def user_key(gateway: Gateway, admin: str, email: str, **limits: int) -> str:
    admin_api(gateway, admin, "POST", "/users", {"email": email})
    return admin_api(gateway, admin, "POST", f"/users/{email}/keys", {"name": "e2e", **limits})["key"]


@pytest.fixture(scope="module")
def receivers():
    webhooks, otlp = Receiver(), Receiver()
    yield webhooks, otlp
    webhooks.stop()
    otlp.stop()


@pytest.fixture(scope="module")
def load(tmp_path_factory, receivers) -> Load:
    """One gateway of two worker processes sharing Redis, with every output on and its webhooks set,
    and the load run once for the tests below (so every total checked is the two workers' sum)."""
    webhooks, otlp = receivers
    redis = RedisServer().start()
    sim = Simulator().start("--tokens-per-sec", "2000")
    data = tmp_path_factory.mktemp("obs-e2e")
    gateway = Gateway(data, extra_env={
        "CCGATE_DATABASE_URL": "", "CCGATE_REDIS_URL": redis.url, "CCGATE_REDIS_PREFIX": "obs:",
        "CCGATE_ACCESS_LOG": str(data / "access.log"), "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url, "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_TRACES_SAMPLER": "always_on", "CCGATE_ALERT_CHECK_SECONDS": "0.3"}, workers=2)
    admin = admin_key(gateway)
    gateway.start()
    try:
        admin_api(gateway, admin, "POST", "/alerts/webhooks",
                  {"name": "ops", "url": webhooks.url + "/generic", "kind": "generic", "secret": WEBHOOK_SECRET})
        admin_api(gateway, admin, "POST", "/alerts/webhooks",
                  {"name": "chat", "url": webhooks.url + "/slack", "kind": "slack"})
        sim.fault(ACCOUNT_KEYS["acct-bad"], "401")  # the simulator refuses this account's key for good
        # acct-bad is the highest tier, so the first request goes there and fails over.
        add_accounts(gateway, admin, sim, **{"acct-a": 0, "acct-b": 0, "acct-bad": 5})
        keys = {"admin": admin, "main": user_key(gateway, admin, "main@e2e.test"),
                "rpm": user_key(gateway, admin, "rpm@e2e.test", rpm=3), "bad": "cc_" + uuid.uuid4().hex}
        gateway.wait_reload()
        run = Load(gateway, sim, keys)
        run.before, run.sim_before, logged = scrape(gateway), sim.stats(), len(sim.requests())
        drive(run)
        time.sleep(1.2)  # the metrics flush (1 s) and the account gauges (each reload interval)
        run.after, run.sim_after = scrape(gateway), sim.stats()
        # The forwarded requests per account key; a credential probe (GET) is no attempt of a request.
        run.posts_by_key = Counter(r["api_key"] for r in sim.requests()[logged:] if r["method"] == "POST")
        wait_until(lambda: len(webhooks.bodies()) >= 2, timeout=10)
        yield run
    finally:
        gateway.stop()
        sim.stop()
        redis.stop()


def drive(run: Load) -> None:
    """~50 requests: both dialects, streamed or not, cache misses and hits, refusals by rpm and by a bad
    key, a failover past an account the upstream refuses, one past a 500, and an abandoned stream."""
    gateway, keys, sent = run.gateway, run.keys, run.sent
    # The first request meets acct-bad (401, so it is disabled) and fails over to a good account.
    sent.append(send(gateway, keys["main"], "/v1/messages"))
    assert wait_until(lambda: not account_enabled(gateway, keys["admin"], "acct-bad"), timeout=10)
    gateway.wait_reload()
    plan = ([("/v1/messages", False)] * 8 + [("/v1/messages", True)] * 5 + [("/v1/chat/completions", False)] * 5
            + [("/v1/chat/completions", True)] * 4)
    with ThreadPoolExecutor(4) as pool:
        sent.extend(pool.map(lambda item: send(gateway, keys["main"], item[0], stream=item[1]), plan))
        sent.extend(pool.map(lambda path: send(gateway, keys["bad"], path), ["/v1/messages"] * 2
                             + ["/v1/chat/completions"]))
    for path in ("/v1/messages", "/v1/chat/completions"):  # one miss, then two hits each
        first = send(gateway, keys["main"], path)
        sent += [first, *(send(gateway, keys["main"], path, repeat_of=(first.prompt_marker, first.reply_marker))
                          for _ in range(2))]
    sent.extend(send(gateway, keys["rpm"], "/v1/messages") for _ in range(5))
    run.sim.fault("*", "500", count=1)  # the next attempt fails, the request fails over
    sent.append(send(gateway, keys["main"], "/v1/messages"))
    sent.append(abandon_stream(run))


def test_requests_refusals_and_latency_series_move_as_the_requests_say(load: Load) -> None:
    statuses = Counter((s.route, s.dialect, f"{s.status // 100}xx") for s in load.sent)
    assert statuses[("messages", "anthropic", "4xx")] == 4  # two bad keys, two over the rpm limit
    for (route, dialect, status_class), count in statuses.items():
        assert load.delta("ccgate_requests_total", route=route, dialect=dialect,
                          status_class=status_class) == count, (route, dialect, status_class)
    assert load.delta("ccgate_requests_total") == len(load.sent)
    answered = sum(s.status == 200 for s in load.sent)
    assert load.delta("ccgate_requests_total", model=MODEL, status_class="2xx") == answered
    assert load.delta("ccgate_admission_refusals_total", reason="auth") == 3
    assert load.delta("ccgate_admission_refusals_total", reason="rpm") == 2
    assert load.delta("ccgate_admission_refusals_total") == 5
    for route in ("messages", "chat_completions"):
        count = sum(s.route == route for s in load.sent)
        assert load.delta("ccgate_added_seconds_count", route=route) == count
        assert load.delta("ccgate_request_seconds_count", route=route) == count
    upstream = sum(s.status == 200 and s.cache != "HIT" for s in load.sent)
    assert load.delta("ccgate_upstream_ttfb_seconds_count", model=MODEL) == upstream
    assert load.delta("ccgate_added_seconds_sum") > 0


def test_every_scrape_answers_both_workers_totals(load: Load) -> None:
    """Either worker may answer a scrape; each answer is the sum of both (PROMETHEUS_MULTIPROC_DIR)."""
    for _ in range(6):
        again = scrape(load.gateway)
        assert series_sum(again, "ccgate_requests_total") == series_sum(load.after, "ccgate_requests_total")
        assert series_sum(again, "ccgate_tokens_total") == series_sum(load.after, "ccgate_tokens_total")
    assert series_sum(load.after, "ccgate_redis_up") == 1


def test_cache_and_upstream_series_match_the_simulator(load: Load) -> None:
    hits = sum(s.cache == "HIT" for s in load.sent)
    misses = sum(s.cache_outcome == "MISS" for s in load.sent)
    assert hits == 4 and misses == sum(s.status == 200 for s in load.sent) - hits
    assert load.delta("ccgate_response_cache_total", outcome="hit") == hits
    assert load.delta("ccgate_response_cache_total", outcome="miss") == misses
    # Attempts per account are what the simulator saw per account key.
    for account, api_key in ACCOUNT_KEYS.items():
        assert load.delta("ccgate_upstream_attempts_total", account=account) == load.posts_by_key[api_key], account
    # Each attempt at acct-bad was refused (once, unless the other worker tried it before it heard).
    refused = load.posts_by_key[ACCOUNT_KEYS["acct-bad"]]
    assert refused >= 1
    assert load.delta("ccgate_upstream_failures_total", account="acct-bad", cause="unauthorized") == refused
    assert load.delta("ccgate_upstream_failures_total", cause="server_error") == 1
    assert load.delta("ccgate_upstream_failures_total") == refused + 1
    assert load.delta("ccgate_upstream_attempts_total") == misses + refused + 1  # each failure failed over


def test_tokens_and_cost_match_the_ledger(load: Load) -> None:
    ids = [s.request_id for s in load.sent]
    marks = ",".join(["%s"] * len(ids))
    (row,) = load.gateway.query(
        f"SELECT SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens), SUM(cache_write_5m_tokens), "
        f"SUM(cache_write_1h_tokens), SUM(cost_micro) FROM usage WHERE request_id IN ({marks})", *ids)
    assert row[0] > 0 and row[1] > 0 and row[5] > 0
    for token_class, total in zip(("input", "output", "cache_read", "cache_write_5m", "cache_write_1h"), row,
                                  strict=False):
        assert load.delta("ccgate_tokens_total", model=MODEL, **{"class": token_class}) == total, token_class
    assert load.delta("ccgate_cost_micro_total", model=MODEL) == row[5]


def test_account_ledger_and_health_gauges(load: Load) -> None:
    after = load.after
    assert load.in_flight_seen >= 1
    assert series_sum(after, "ccgate_account_state", account="acct-bad", state="disabled") == 1
    for account in ACCOUNT_KEYS:
        assert series_sum(after, "ccgate_account_state", account=account) == 1  # one state each
    assert series_sum(after, "ccgate_account_state", state="healthy") >= 1
    assert load.delta("ccgate_ledger_commit_seconds_count") >= 1
    assert ("ccgate_ledger_queue_depth", frozenset()) in after
    assert series_sum(after, "ccgate_database_up") == 1
    assert series_sum(after, "ccgate_state_degraded") == 0
    assert series_sum(after, "ccgate_redis_up") == 1


def access_lines(load: Load) -> list[dict]:
    path = Path(load.gateway.env["CCGATE_ACCESS_LOG"])
    wait_until(lambda: len(path.read_text().splitlines()) >= len(load.sent), timeout=5)
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_one_access_log_line_per_request_with_its_fields(load: Load) -> None:
    lines = access_lines(load)
    by_id = Counter(line["request_id"] for line in lines)
    assert sorted(by_id) == sorted(s.request_id for s in load.sent)
    assert set(by_id.values()) == {1}
    wanted = {"request_id", "key_id", "user_id", "dialect", "model", "account", "status", "error_type",
              "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens",
              "cost_micro", "cache", "added_ms", "upstream_ms"}
    lines_by_id = {line["request_id"]: line for line in lines}
    for sent in load.sent:
        line = lines_by_id[sent.request_id]
        assert wanted <= line.keys()
        assert (line["status"], line["dialect"], line["stream"], line["cache"]) == (
            sent.status, sent.dialect, sent.stream, sent.cache_outcome), line
        if sent.status == 200:
            assert line["account"] in ((None,) if sent.cache == "HIT" else ("acct-a", "acct-b"))
            assert line["key_id"] and line["user_id"]
            assert line["output_tokens"] > 0 and line["cost_micro"] > 0
    refused = [lines_by_id[s.request_id] for s in load.sent if s.status >= 400]
    assert Counter(line["refusal"] for line in refused) == {"auth": 3, "rpm": 2}
    abandoned = lines_by_id[load.sent[-1].request_id]
    assert abandoned["error_type"] == "client_disconnected" and abandoned["stream"] is True


def spans_of(otlp: Receiver) -> list:
    spans = []
    for _, body in otlp.bodies("/v1/traces"):
        message = ExportTraceServiceRequest()
        message.ParseFromString(body)
        spans += [span for resource in message.resource_spans for scope in resource.scope_spans
                  for span in scope.spans]
    return spans


def attributes(span) -> dict:
    return {item.key: getattr(item.value, item.value.WhichOneof("value")) for item in span.attributes}


def test_no_secret_in_the_log_the_metrics_or_the_traces(load: Load, receivers) -> None:
    _, otlp = receivers
    access_lines(load)
    wait_until(lambda: len(spans_of(otlp)) >= 3 * len(load.sent), timeout=5)
    outputs = {"access log": Path(load.gateway.env["CCGATE_ACCESS_LOG"]).read_bytes(),
               "metrics": urlopen_bytes(load.gateway.url + "/metrics"),
               "traces": b"".join(body for _, body in otlp.bodies())}
    secrets = [*load.keys.values(), *ACCOUNT_KEYS.values(), WEBHOOK_SECRET,
               *(s.prompt_marker for s in load.sent), *(s.reply_marker for s in load.sent if s.reply_marker)]
    for where, data in outputs.items():
        assert data, where
        for secret in secrets:
            assert secret.encode() not in data, (where, secret[:12])


def urlopen_bytes(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def test_traces_reach_an_otlp_receiver_and_the_traceparent_reaches_upstream(load: Load, receivers) -> None:
    _, otlp = receivers
    target = load.sent[1]  # a plain anthropic message that went upstream once
    assert target.path == "/v1/messages" and not target.stream and target.status == 200
    wait_until(lambda: any(attributes(span).get("ccgate.request_id") == target.request_id
                           for span in spans_of(otlp)), timeout=5)
    spans = spans_of(otlp)
    root = next(span for span in spans if attributes(span).get("ccgate.request_id") == target.request_id)
    children = {span.name: span for span in spans if span.parent_span_id == root.span_id}
    assert {"ccgate.admission", "ccgate.routing", "ccgate.settlement", f"chat {MODEL}"} <= children.keys()
    assert all(span.trace_id == root.trace_id for span in children.values())
    upstream = attributes(children[f"chat {MODEL}"])
    assert upstream["gen_ai.provider.name"] == "anthropic" and upstream["gen_ai.request.model"] == MODEL
    assert upstream["ccgate.account"] in ("acct-a", "acct-b") and upstream["http.response.status_code"] == 200
    usage = attributes(root)
    assert usage["gen_ai.usage.output_tokens"] > 0 and usage["gen_ai.operation.name"] == "chat"
    # The simulator got the upstream span's context in a traceparent header.
    (seen,) = [record for record in load.sim.requests()
               if target.prompt_marker in base64.b64decode(record["body_b64"]).decode()]
    _, trace_id, parent_id, _ = seen["headers"]["traceparent"].split("-")
    assert bytes.fromhex(trace_id) == root.trace_id
    assert bytes.fromhex(parent_id) == children[f"chat {MODEL}"].span_id
    # The failover past acct-bad left an errored upstream span.
    errors = [attributes(span) for span in spans if attributes(span).get("error.type") == "unauthorized"]
    assert errors and errors[0]["ccgate.account"] == "acct-bad"


def test_signed_and_slack_webhooks_say_the_account_was_disabled(load: Load, receivers) -> None:
    webhooks, _ = receivers
    generic = [(headers, body) for headers, body in webhooks.bodies("/generic")
               if json.loads(body)["alert"] == "account_disabled"]
    assert generic, webhooks.bodies()
    headers, body = generic[0]
    expected = hmac.new(WEBHOOK_SECRET.encode(), headers["x-ccgate-timestamp"].encode() + b"." + body,
                        hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-ccgate-signature"], "sha256=" + expected)
    payload = json.loads(body)
    assert payload["subject"] == "acct-bad" and payload["severity"] == "critical"
    slack = [json.loads(body) for _, body in webhooks.bodies("/slack")]
    assert len(generic) == 1  # the two workers' monitors send it once between them (claimed in Redis)
    assert sum("account_disabled" in message["text"] and "acct-bad" in message["text"] for message in slack) == 1
    assert all(set(message) == {"text"} for message in slack)
    assert not any(WEBHOOK_SECRET.encode() in body for _, body in webhooks.bodies())
