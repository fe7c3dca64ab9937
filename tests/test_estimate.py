"""The expected-cost estimator alone, on Claude Code-shaped traffic (issue 13's targets)."""

from __future__ import annotations

from dataclasses import dataclass

from ccgate.billing.estimate import DEFAULT_OUTPUT_TOKENS, UsageEstimator, asks_for_1h_cache, estimate
from ccgate.billing.estimate import KeyHistory as History
from ccgate.billing.prices import ModelPrice, RequestFlags, Usage, cost_micro
from helpers import catalog_price, old_worst_case_hold

SONNET, OPUS, HAIKU = catalog_price("claude-sonnet-4-6"), catalog_price("claude-opus-4-6"), catalog_price(
    "claude-haiku-4-5")
BODY = 118_000  # bytes of a Claude Code request (measured through ccgate)
BYTES_PER_TOKEN = 4  # what such bodies really tokenize to


@dataclass
class Request:
    model: ModelPrice
    body_size: int
    max_tokens: int
    usage: Usage  # what the upstream will report


def claude_code_turn(turn: int, model: ModelPrice, at_once: int) -> list[Request]:
    """One turn of a Claude Code session: `at_once` main-model requests sharing the session's cached
    prefix (all written on the first turn, only the new tail later), plus the small model's title call."""
    body = BODY + 3_000 * turn
    tokens, before = body // BYTES_PER_TOKEN, (body - 3_000) // BYTES_PER_TOKEN
    output = 700 + 150 * turn
    if turn == 0:
        usage = Usage(input_tokens=3, output_tokens=output, cache_write_5m_tokens=tokens - 3)
    else:
        usage = Usage(input_tokens=3, output_tokens=output, cache_read_tokens=before,
                      cache_write_5m_tokens=tokens - before - 3)
    title = Request(HAIKU, 2_000, 512, Usage(input_tokens=500, output_tokens=20))
    return [Request(model, body, 32_000, usage) for _ in range(at_once)] + [title]


def run_session(model: ModelPrice, balance: int, turns: int = 10, at_once: dict[int, int] | None = None) -> list[int]:
    """Admit each turn's requests side by side against `balance` minus the holds in flight, then settle
    them at their real cost; the holds, in order.  Fails on the first refusal."""
    estimator, holds = UsageEstimator(), []
    for turn in range(turns):
        held = 0
        admitted = []
        for request in claude_code_turn(turn, model, (at_once or {}).get(turn, 1)):
            hold = estimator.estimate("key", request.body_size, request.model, request.max_tokens, RequestFlags(),
                                      False).cost_micro
            assert hold <= balance - held, f"turn {turn}: refused a hold of {hold} with {balance - held} available"
            held += hold
            holds.append(hold)
            admitted.append(request)
        for request in admitted:
            balance -= cost_micro(request.model, request.usage)
            estimator.observe("key", request.body_size, request.model.id, request.usage)
    assert balance >= 0
    return holds


def test_a_1_dollar_user_works_a_10_turn_sonnet_session_with_three_requests_at_once():
    holds = run_session(SONNET, 1_000_000, at_once={0: 3, 4: 3, 8: 3})
    assert max(holds) < 1_000_000 / 3 * 0.7, "each hold is well under a third of the budget"


def test_a_2_dollar_user_works_a_10_turn_opus_session_with_three_requests_at_once():
    holds = run_session(OPUS, 2_000_000, at_once={0: 3, 4: 3, 8: 3})
    assert max(holds) < 2_000_000 / 3 * 0.7


def test_the_first_hold_is_a_fraction_of_the_worst_case_and_near_the_real_cost():
    first = claude_code_turn(0, SONNET, 1)[0]
    hold = estimate(History(), first.body_size, SONNET, 32_000, RequestFlags(), False).cost_micro
    worst = old_worst_case_hold(BODY, SONNET, 32_000)
    real = cost_micro(SONNET, first.usage)
    assert worst > 1_150_000  # the $1.18 of the issue
    assert real < hold < 2 * real, (hold, real)
    # 118000 x 0.3 = 35400 tokens written at $3.75 = 132750; 4096 x $15 = 61440
    assert hold == 132_750 + 61_440


def test_later_turns_hold_what_cache_reads_cost():
    estimator = UsageEstimator()
    for turn in range(3):
        request = claude_code_turn(turn, SONNET, 1)[0]
        estimator.observe("key", request.body_size, SONNET.id, request.usage)
    nxt = claude_code_turn(3, SONNET, 1)[0]
    hold = estimator.estimate("key", nxt.body_size, SONNET, 32_000, RequestFlags(), False).cost_micro
    real = cost_micro(SONNET, nxt.usage)
    assert hold < 100_000 and 0.5 * real < hold < 3 * real, (hold, real)


def test_the_small_models_short_answers_do_not_shrink_the_main_models_output():
    estimator = UsageEstimator()
    estimator.observe("key", 300, HAIKU.id, Usage(input_tokens=8, output_tokens=1))  # the quota check
    history = estimator.history("key")
    assert history.typical_output(SONNET.id) == DEFAULT_OUTPUT_TOKENS
    assert history.typical_output(HAIKU.id) == 1
    # and a tiny body barely moves the tokens-per-byte ratio a big one taught
    estimator.observe("key", 100_000, SONNET.id, Usage(input_tokens=25_000, output_tokens=900))
    estimator.observe("key", 300, HAIKU.id, Usage(input_tokens=8, output_tokens=1))
    assert 0.24 < estimator.history("key").input_per_byte < 0.26


def test_a_claude_code_key_uses_95_percent_of_its_token_budget_before_its_first_refusal():
    budget, used, estimator = 400_000, 0, UsageEstimator()
    for turn in range(1_000):
        requests = claude_code_turn(turn % 40, SONNET, 3 if turn % 5 == 0 else 1)
        reserved = 0
        for request in requests:
            reserve = estimator.estimate("key", request.body_size, request.model, request.max_tokens, RequestFlags(),
                                         False).reserve_tokens
            if used + reserved + reserve > budget:
                assert used >= 0.95 * budget, f"refused at {used} of {budget} tokens"
                return
            reserved += reserve
        for request in requests:
            usage = request.usage
            used += usage.input_tokens + usage.cache_write_tokens + usage.output_tokens
            estimator.observe("key", request.body_size, request.model.id, usage)
    raise AssertionError("never refused")


def test_a_key_whose_small_bodies_carry_many_tokens_is_held_for_them_next_time():
    estimator = UsageEstimator()  # 60 images by URL: a 4.6 KB body, 90,005 input tokens (issue 13)
    estimator.observe("key", 4_600, SONNET.id, Usage(input_tokens=90_005, output_tokens=10))
    expected = estimator.estimate("key", 4_600, SONNET, 1024, RequestFlags(), False).usage
    assert expected.total_input_tokens == 90_005


def test_one_hour_ttl_bodies_are_held_at_the_one_hour_write_price():
    body = b'{"system":[{"type":"text","text":"x","cache_control":{"type":"ephemeral", "ttl": "1h"}}]}'
    assert asks_for_1h_cache(body) and asks_for_1h_cache(b'"ttl":"1h"')
    assert not asks_for_1h_cache(b'{"cache_control":{"type":"ephemeral","ttl":"5m"}}')
    expected = estimate(History(), 10_000, SONNET, 100, RequestFlags(), True)
    assert (expected.usage.cache_write_1h_tokens, expected.usage.cache_write_5m_tokens) == (3_000, 0)
    assert expected.cost_micro == 3_000 * 6 + 100 * 15


def test_bounds_max_tokens_and_the_context_window():
    expected = estimate(History(), 10_000_000, SONNET, 1, RequestFlags(), False)
    assert expected.usage.total_input_tokens == SONNET.max_input_tokens and expected.usage.output_tokens == 1
    assert expected.reserve_tokens == SONNET.max_input_tokens + 1


def test_a_long_context_request_is_held_at_the_long_context_tier():
    sonnet45 = catalog_price("claude-sonnet-4-5", long_context_threshold=200_000, long_context_input_bp=20_000,
                             long_context_output_bp=15_000)
    expected = estimate(History(), 2_000_000, sonnet45, 1000, RequestFlags(long_context_beta=True), False)
    # 2 MB x 0.3 = 600000 tokens, past the 200K window thanks to the beta: written at 3.75 x 2; 1000 out at 15 x 1.5
    assert expected.usage.cache_write_5m_tokens == 600_000
    assert expected.cost_micro == 600_000 * 7.5 + 1000 * 22.5


def test_flags_price_the_hold_as_settlement_will():
    fast = catalog_price("claude-opus-4-6", fast_input_bp=60_000, fast_output_bp=60_000)
    standard = estimate(History(), 40_000, fast, 8_000, RequestFlags(), False).cost_micro
    assert estimate(History(), 40_000, fast, 8_000, RequestFlags(fast=True), False).cost_micro == 6 * standard


def test_the_estimator_forgets_the_least_recently_settled_key_beyond_its_size():
    estimator = UsageEstimator(max_keys=2)
    for key in ("a", "b", "a", "c"):
        estimator.observe(key, 1_000, SONNET.id, Usage(input_tokens=100, output_tokens=7))
    assert estimator.history("b").typical_output(SONNET.id) == DEFAULT_OUTPUT_TOKENS
    assert estimator.history("a").typical_output(SONNET.id) == 7
