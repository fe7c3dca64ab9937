"""Issue 4: each key's rules, enforced exactly under parallel load, in both dialects."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import anthropic
import openai
import pytest

from harness import Gateway, Simulator
from helpers import PROMPT, key_status, message_body, post, raw, slow
from services import wait_until


def balance_and_ledger(gateway, email: str) -> tuple[int, int]:
    [(user_id, balance)] = gateway.query("select id, balance_micro from users where email = %s", email)
    [(ledger_total,)] = gateway.query("select coalesce(sum(amount_micro), 0) from ledger where user_id = %s", user_id)
    return balance, ledger_total


# -- RPM -----------------------------------------------------------------------------------------

def test_rpm_allows_n_then_429_with_retry_after_and_headers(gateway, email):
    key = gateway.new_key(email, "--rpm", "3")
    remaining = []
    for _ in range(3):
        status, headers, _ = post(gateway, key, message_body())
        assert status == 200
        remaining.append(int(headers["x-ratelimit-remaining"]))
        assert headers["x-ratelimit-limit"] == "3"
    assert remaining == [2, 1, 0]
    status, headers, payload = post(gateway, key, message_body())
    assert status == 429 and payload["error"]["type"] == "rate_limit_error"
    assert "3 requests per minute" in payload["error"]["message"]
    assert 1 <= int(headers["retry-after"]) <= 60
    assert headers["x-ratelimit-remaining"] == "0"
    assert int(headers["x-ratelimit-reset"]) > time.time()
    with pytest.raises(openai.RateLimitError) as caught:
        openai.OpenAI(api_key=key, base_url=gateway.url + "/v1", max_retries=0).chat.completions.create(
            model="claude-haiku-4-5", messages=PROMPT)
    assert caught.value.body["type"] == "rate_limit_error"


def test_count_tokens_has_a_limit_of_its_own_and_models_none(gateway, email):
    key = gateway.new_key(email, "--rpm", "1")
    assert post(gateway, key, message_body())[0] == 200
    assert post(gateway, key, message_body())[0] == 429
    client = anthropic.Anthropic(api_key=key, base_url=gateway.url, max_retries=0)
    for _ in range(10):  # rpm 1: max(3 x 1, 10) count_tokens a minute, apart from the key's RPM
        assert client.messages.count_tokens(model="claude-haiku-4-5", messages=PROMPT).input_tokens > 0
        assert client.models.list().data
    with pytest.raises(anthropic.RateLimitError):
        client.messages.count_tokens(model="claude-haiku-4-5", messages=PROMPT)
    assert client.models.list().data


# -- concurrency ---------------------------------------------------------------------------------

def test_concurrency_admits_exactly_n_of_2n_parallel_slow_requests(gateway, email):
    key = gateway.new_key(email, "--concurrency", "2")
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: post(gateway, key, message_body(text=slow(1500))), range(4)))
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [200, 200, 429, 429]
    refused = next(payload for status, _, payload in results if status == 429)
    assert "2 at a time" in refused["error"]["message"]
    assert key_status(gateway, key)["rate_limit"]["in_flight"] == 0
    assert post(gateway, key, message_body())[0] == 200


def test_leases_come_back_after_upstream_errors(gateway, email):
    key = gateway.new_key(email, "--concurrency", "1")
    for _ in range(3):
        status, _, _ = post(gateway, key, message_body(text="[[sim:fault=400]]"))
        assert status == 400
    assert post(gateway, key, message_body())[0] == 200


@pytest.fixture(scope="module")
def slow_stack(tmp_path_factory):
    """A simulator that streams 20 tokens a second, behind its own gateway."""
    simulator = Simulator().start("--tokens-per-sec", "20")
    gw = Gateway(tmp_path_factory.mktemp("slow-gateway"))
    gw.add_account("slow-sim", "sk-ant-slow", simulator.url)
    gw.start()
    yield gw, simulator
    gw.stop()
    simulator.stop()


def test_client_hang_up_mid_stream_frees_the_lease_and_cancels_upstream(slow_stack, email):
    gateway, simulator = slow_stack
    key = gateway.new_key(email, "--concurrency", "1")
    cancelled_before = simulator.stats()["cancelled_streams"]
    body = message_body(max_tokens=500, text="[[sim:tokens=400]]", stream=True)
    with socket.create_connection(("127.0.0.1", gateway.port)) as conn:
        conn.sendall(b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                     + f"x-api-key: {key}\r\ncontent-length: {len(body)}\r\n\r\n".encode() + body)
        received = b""
        while b"message_start" not in received:
            received += conn.recv(65536)
        assert key_status(gateway, key)["rate_limit"]["in_flight"] == 1
    assert wait_until(lambda: key_status(gateway, key)["rate_limit"]["in_flight"] == 0, timeout=1.0), \
        "lease not back within a second"
    assert wait_until(lambda: simulator.stats()["cancelled_streams"] == cancelled_before + 1), \
        "the upstream stream is cancelled"
    assert post(gateway, key, message_body())[0] == 200


# -- token budget --------------------------------------------------------------------------------

def test_token_budget_refuses_with_the_seed_message_and_key_status_adds_up(gateway, email):
    key = gateway.new_key(email, "--token-budget", "2600", "--window", "5h")
    ids = []
    while True:
        body = message_body(max_tokens=400, text=f"[[sim:tokens=300]] {len(ids)}")
        status, headers, payload = post(gateway, key, body)
        if status != 200:
            break
        ids.append(headers["request-id"])
        assert len(ids) < 10
    assert status == 429 and payload["error"]["type"] == "rate_limit_error"
    # The oldest one-minute bucket leaves the 5h window between 5h and 5h 1m from now.
    assert re.match(r"Token budget exceeded\. Resets in (5h [01]m|4h 59m)\.", payload["error"]["message"])
    assert headers["x-should-retry"] == "false", "an SDK must not retry a wait of hours"
    assert int(headers["retry-after"]) > 4 * 3600
    used = 0
    for request_id in ids:
        usage = raw(gateway, "GET", f"/v1/usage/{request_id}", headers={"x-api-key": key})[2]
        used += usage["input_tokens"] + usage["output_tokens"] + usage["cache_creation_input_tokens"]
    status = key_status(gateway, key)
    assert status["budget"]["total_tokens"] == 2600
    assert status["budget"]["used_tokens"] == used
    assert status["budget"]["remaining_tokens"] == 2600 - used
    assert status["budget"]["window"] == "5h rolling"
    assert re.fullmatch(r"5h [01]m|4h 59m", status["budget"]["resets_in"])


def test_parallel_requests_cannot_overspend_a_token_budget(gateway, email):
    key = gateway.new_key(email, "--token-budget", "5000")
    # each reserves ~1050 tokens (its expected use) and uses ~920
    body = message_body(max_tokens=1000, text="[[sim:tokens=900]]" + slow(300))
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: post(gateway, key, body), range(8)))
    admitted = [status for status, _, _ in results if status == 200]
    assert len(admitted) == 4, "only four reservations fit in the budget at once"
    assert key_status(gateway, key)["budget"]["used_tokens"] <= 5000


# -- model access, expiry ------------------------------------------------------------------------

def test_model_access_is_403_naming_the_model_in_both_dialects(gateway, email):
    key = gateway.new_key(email, "--models", "claude-haiku-4-5")
    status, _, payload = post(gateway, key, message_body(model="claude-sonnet-4-6"))
    assert status == 403 and payload["error"]["type"] == "permission_error"
    assert "claude-sonnet-4-6" in payload["error"]["message"]
    assert post(gateway, key, message_body(model="claude-haiku-4-5-20251001"))[0] == 200
    with pytest.raises(openai.PermissionDeniedError):
        openai.OpenAI(api_key=key, base_url=gateway.url + "/v1", max_retries=0).chat.completions.create(
            model="claude-sonnet-4-6", messages=PROMPT)
    ids = [m.id for m in anthropic.Anthropic(api_key=key, base_url=gateway.url).models.list()]
    assert ids == ["claude-haiku-4-5-20251001"]


def test_expired_key_is_401(gateway, email):
    key = gateway.new_key(email)
    [key_id] = gateway.key_ids(email)
    assert post(gateway, key, message_body())[0] == 200
    expiry = datetime.now(UTC) + timedelta(seconds=2)  # room for the update (in-process) on a busy machine
    gateway.update_key(key_id, "--expires", expiry.isoformat())
    time.sleep(max(0.0, (expiry - datetime.now(UTC)).total_seconds()) + 0.2)
    status, _, payload = post(gateway, key, message_body())
    assert status == 401 and "expired" in payload["error"]["message"]


def test_key_update_changes_limits_of_a_running_server(gateway, email):
    key = gateway.new_key(email)
    [key_id] = gateway.key_ids(email)
    gateway.update_key(key_id, "--rpm", "1")
    gateway.wait_reload()
    assert post(gateway, key, message_body())[0] == 200
    assert post(gateway, key, message_body())[0] == 429
    gateway.update_key(key_id, "--rpm", "0")
    gateway.wait_reload()
    assert post(gateway, key, message_body())[0] == 200


@pytest.mark.parametrize("args, message", [
    (["--rpm", "-1"], "whole number"),
    (["--concurrency", "two"], "whole number"),
    (["--window", "5x"], "not a duration"),
    (["--models", "claude-nope"], "unknown model"),
    (["--expires", "2001-01-01"], "in the past"),
    (["--expires", "tomorrow"], "not a date"),
])
def test_bad_limit_values_are_clear_errors_that_change_nothing(gateway, email, args, message):
    gateway.new_user(email)
    result = gateway.cli("keys", "create", email, *args, check=False)
    assert result.returncode == 2 and message in result.stderr
    assert gateway.key_ids(email) == []


# -- credit --------------------------------------------------------------------------------------

def test_insufficient_credit_is_402_saying_how_much_is_needed(gateway, email):
    gateway.new_user(email, "--credit-usd", "0.001")
    key = gateway.new_key(email)
    status, _, payload = post(gateway, key, message_body(model="claude-opus-4-6", max_tokens=4000))
    assert status == 402 and payload["error"]["type"] == "billing_error"
    assert "is expected to cost $0." in payload["error"]["message"] and "top up $" in payload["error"]["message"]
    with pytest.raises(openai.APIStatusError) as caught:
        openai.OpenAI(api_key=key, base_url=gateway.url + "/v1", max_retries=0).chat.completions.create(
            model="claude-opus-4-6", max_tokens=4000, messages=PROMPT)
    assert caught.value.status_code == 402 and caught.value.body["type"] == "insufficient_quota"


def test_grant_then_spend_is_debited_exactly_and_the_ledger_explains_the_balance(gateway, email):
    gateway.new_user(email, "--credit-usd", "0")
    key = gateway.new_key(email)
    assert post(gateway, key, message_body())[0] == 402
    gateway.admin(lambda ops: ops.grant_credit(email, 0.5, "welcome"))
    gateway.wait_reload()
    status, headers, message = post(gateway, key, message_body())
    assert status == 200
    cost = raw(gateway, "GET", f"/v1/usage/{headers['request-id']}", headers={"x-api-key": key})[2]["cost_micro"]
    assert cost > 0
    balance, ledger_total = balance_and_ledger(gateway, email)
    assert balance == 500_000 - cost == ledger_total
    credit = key_status(gateway, key)["credit"]
    assert credit["balance_micro"] == balance and credit["held_micro"] == 0


def test_fifty_parallel_requests_never_overspend_a_small_credit(gateway, email):
    gateway.new_user(email, "--credit-usd", "0.05")
    key = gateway.new_key(email)
    body = message_body(model="claude-sonnet-4-6", max_tokens=1000, text="[[sim:tokens=900]]" + slow(200))

    async def one(client: anthropic.AsyncAnthropic):
        try:
            return await client.messages.create(**json.loads(body))
        except anthropic.APIStatusError as error:
            return error.status_code

    async def burst():
        client = anthropic.AsyncAnthropic(api_key=key, base_url=gateway.url, max_retries=0)
        results = await asyncio.gather(*(one(client) for _ in range(50)))
        await client.close()
        return results

    results = asyncio.run(burst())
    served = [r for r in results if not isinstance(r, int)]
    assert served and all(r == 402 for r in results if isinstance(r, int))
    balance, ledger_total = balance_and_ledger(gateway, email)
    assert balance >= 0 and balance == ledger_total
    spent = 50_000 - balance
    assert spent == sum(
        raw(gateway, "GET", f"/v1/usage/{m._request_id}", headers={"x-api-key": key})[2]["cost_micro"]
        for m in served)


def test_redemption_code_tops_up_once(gateway, email):
    gateway.new_user(email, "--credit-usd", "0")
    key = gateway.new_key(email)
    [code] = gateway.admin(lambda ops: ops.create_codes(2.5, 1, None))
    status, _, payload = raw(gateway, "POST", "/v1/credit/redeem", body=json.dumps({"code": code}).encode(),
                             headers={"x-api-key": key})
    assert status == 200 and payload["balance_micro"] == 2_500_000
    status, _, payload = raw(gateway, "POST", "/v1/credit/redeem", body=json.dumps({"code": code}).encode(),
                             headers={"x-api-key": key})
    assert status == 400 and "redeemed already" in payload["error"]["message"]
    gateway.wait_reload()
    assert key_status(gateway, key)["credit"]["balance_micro"] == 2_500_000
    assert balance_and_ledger(gateway, email) == (2_500_000, 2_500_000)


def test_key_status_comes_back_filled_in_as_the_seed_shows(gateway, email):
    gateway.new_user(email, "--credit-usd", "5")
    key = gateway.new_key(email, "--rpm", "60", "--concurrency", "5", "--token-budget", "5000000", "--window", "5h")
    assert post(gateway, key, message_body())[0] == 200
    status = key_status(gateway, key)
    assert status["key"] == f"cc_user_...{key[-4:]}" and status["status"] == "active"
    assert status["budget"]["total_tokens"] == 5_000_000
    assert 0 < status["budget"]["used_tokens"] < 100
    assert status["budget"]["remaining_tokens"] == 5_000_000 - status["budget"]["used_tokens"]
    assert status["budget"]["window"] == "5h rolling"
    assert re.fullmatch(r"5h [01]m|4h 59m", status["budget"]["resets_in"])
    assert status["rate_limit"]["rpm"] == 60 and status["rate_limit"]["concurrent"] == 5
    assert status["rate_limit"]["requests_last_minute"] == 1
    assert 0 < status["credit"]["balance_micro"] < 5_000_000


def test_key_status_counts_the_requests_of_a_key_without_an_rpm_limit(gateway, email):
    key = gateway.new_key(email)
    for _ in range(4):
        assert post(gateway, key, message_body())[0] == 200
    status = key_status(gateway, key)
    assert status["rate_limit"]["rpm"] is None
    assert status["rate_limit"]["requests_last_minute"] == 4


def test_a_disabled_user_is_refused_and_an_enabled_one_served(gateway, email):
    key = gateway.new_key(email)
    gateway.admin(lambda ops: ops.set_user_disabled(email, True))
    gateway.wait_reload()
    assert post(gateway, key, message_body())[0] == 401
    gateway.admin(lambda ops: ops.set_user_disabled(email, False))
    gateway.wait_reload()
    assert post(gateway, key, message_body())[0] == 200
