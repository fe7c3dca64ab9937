"""Golden table: (model, request, usage) -> exact micro-dollars, each worked out by hand from
anthropic-api.md §6.3 and §7, against the catalog a fresh database is seeded with.

Prices are $ per million tokens, which is micro-dollars per token, so `tokens x price` below is
already in micro-dollars.  The debit is the exact sum rounded up once.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccgate.billing.prices import COMPONENTS, ModelPrice, RequestFlags, Usage, cost, request_flags
from ccgate.billing.usage_view import cost_object, price_row
from ccgate.store.db import migrate
from ccgate.store.rows import UsageRow

SONNET46, SONNET45, OPUS46, OPUS45 = ("claude-sonnet-4-6", "claude-sonnet-4-5-20250929", "claude-opus-4-6",
                                      "claude-opus-4-5-20251101")
HAIKU45, FABLE51, SONNET5 = "claude-haiku-4-5-20251001", "claude-fable-5-1", "claude-sonnet-5"
FAST, US, FAST_US = {"speed": "fast"}, {"inference_geo": "us"}, {"speed": "fast", "inference_geo": "us"}
LC = ["claude-code-20250219,context-1m-2025-08-07"]  # the 1M-context beta, as Claude Code sends it


def cw(m5: int = 0, h1: int = 0) -> dict:
    """The `cache_creation` breakdown of a usage object."""
    return {"cache_creation_input_tokens": m5 + h1,
            "cache_creation": {"ephemeral_5m_input_tokens": m5, "ephemeral_1h_input_tokens": h1}}


def tools(search: int = 0, fetch: int = 0) -> dict:
    return {"server_tool_use": {"web_search_requests": search, "web_fetch_requests": fetch}}


# (model, body fields, beta headers, markup bp, batch, usage object, expected micro-dollars)
CASES = [
    # -- base prices, one component at a time
    (SONNET46, {}, [], 10000, False, {"input_tokens": 1000}, 3000),  # 1000 x $3
    (SONNET46, {}, [], 10000, False, {"output_tokens": 1000}, 15000),  # 1000 x $15
    (SONNET46, {}, [], 10000, False, {"input_tokens": 1}, 3),  # 1 x $3
    (SONNET46, {}, [], 10000, False, {"cache_read_input_tokens": 1}, 1),  # 1 x $0.30 = 0.3 -> 1
    (SONNET46, {}, [], 10000, False, {"cache_read_input_tokens": 10}, 3),  # 10 x $0.30 = 3
    (SONNET46, {}, [], 10000, False, cw(m5=1000), 3750),  # 1000 x $3.75 (x1.25)
    (SONNET46, {}, [], 10000, False, cw(h1=1000), 6000),  # 1000 x $6 (x2)
    (SONNET46, {}, [], 10000, False, {"cache_creation_input_tokens": 1000}, 3750),  # no breakdown: 5m, 3750
    (SONNET46, {}, [], 10000, False, cw(m5=1), 4),  # 3.75 -> 4
    (SONNET46, {}, [], 10000, False, cw(m5=4), 15),  # 4 x 3.75 = 15
    # §6.4's mixed-TTL example: 2048x3=6144 + 1800x0.3=540 + 148x3.75=555 + 100x6=600 + 503x15=7545 = 15384
    (SONNET46, {}, [], 10000, False, {"input_tokens": 2048, "cache_read_input_tokens": 1800, "output_tokens": 503,
                                      **cw(m5=148, h1=100)}, 15384),
    (HAIKU45, {}, [], 10000, False, {"input_tokens": 1_000_000, "output_tokens": 1_000_000}, 6_000_000),  # $1 + $5
    (HAIKU45, {}, [], 10000, False, {"input_tokens": 3, "output_tokens": 3}, 18),  # 3x1 + 3x5
    (HAIKU45, {}, [], 10000, False, {"cache_read_input_tokens": 7}, 1),  # 7 x 0.1 = 0.7 -> 1
    # rounded once, not per component: 5x0.1=0.5 + 2x1.25=2.5 = 3.0 (per component it would be 1+3=4)
    (HAIKU45, {}, [], 10000, False, {"cache_read_input_tokens": 5, **cw(m5=2)}, 3),
    (OPUS46, {}, [], 10000, False, {"input_tokens": 1000, "output_tokens": 1000}, 30000),  # 5000 + 25000
    (OPUS45, {}, [], 10000, False, cw(h1=1), 10),  # 1 x $10
    (FABLE51, {}, [], 10000, False, {"cache_read_input_tokens": 1000}, 250),  # 1000 x $0.25 (x0.025 of $10)
    (SONNET5, {}, [], 10000, False, cw(h1=1000), 4000),  # 1000 x $4
    (SONNET46, {}, [], 10000, False, {}, 0),  # nothing used, nothing billed
    # -- fast mode: Opus 4.6 at $30 / $150 (x6), cache prices x6 too
    (OPUS46, FAST, [], 10000, False, {"input_tokens": 1000, "output_tokens": 1000}, 180000),  # 30000 + 150000
    (OPUS46, FAST, [], 10000, False, {"cache_read_input_tokens": 1000}, 3000),  # 1000 x 0.5 x 6
    (OPUS46, FAST, [], 10000, False, cw(m5=1000), 37500),  # 1000 x 6.25 x 6
    (OPUS46, FAST, [], 10000, False, cw(h1=100), 6000),  # 100 x 10 x 6
    (SONNET45, FAST, [], 10000, False, {"input_tokens": 1000}, 3000),  # no fast mode: 1000 x 3
    (SONNET46, FAST, [], 10000, False, {"output_tokens": 100}, 1500),  # no fast mode: 100 x 15
    # -- US-only inference: x1.1 on Opus 4.6 and later models
    (OPUS46, US, [], 10000, False, {"input_tokens": 1000, "output_tokens": 1000}, 33000),  # 30000 x 1.1
    (OPUS46, FAST_US, [], 10000, False, {"input_tokens": 1000, "output_tokens": 1000}, 198000),  # 180000 x 1.1
    (OPUS46, US, [], 10000, False, {"cache_read_input_tokens": 3}, 2),  # 3 x 0.5 x 1.1 = 1.65 -> 2
    (SONNET46, US, [], 10000, False, {"input_tokens": 1}, 4),  # 3 x 1.1 = 3.3 -> 4
    (FABLE51, US, [], 10000, False, {"cache_read_input_tokens": 1000}, 275),  # 250 x 1.1
    (FABLE51, US, [], 10000, False, {"cache_read_input_tokens": 1}, 1),  # 0.25 x 1.1 = 0.275 -> 1
    (SONNET5, US, [], 10000, False, cw(h1=1000), 4400),  # 4000 x 1.1
    (HAIKU45, US, [], 10000, False, {"input_tokens": 1000}, 1000),  # older model: no surcharge
    (OPUS45, US, [], 10000, False, {"input_tokens": 1000}, 5000),  # older model: no surcharge
    (SONNET46, {"inference_geo": "global"}, [], 10000, False, {"input_tokens": 1000}, 3000),  # only "us" costs more
    # -- long context: Sonnet 4.5 with the 1M beta, above 200K input tokens, the whole request x2 in, x1.5 out
    (SONNET45, {}, LC, 10000, False, {"input_tokens": 200_001, "output_tokens": 1000},
     1_222_506),  # 200001 x 6 = 1200006; 1000 x 22.5 = 22500
    (SONNET45, {}, LC, 10000, False, {"input_tokens": 200_000, "output_tokens": 1000},
     615_000),  # not above 200K: 200000 x 3 = 600000; 1000 x 15 = 15000
    (SONNET45, {}, [], 10000, False, {"input_tokens": 250_000}, 750_000),  # no beta: 250000 x 3
    # cache reads and writes count toward the 200K: 1000+150000+50000 = 201000 > 200K
    # 1000 x 6 = 6000; 150000 x 0.6 = 90000; 50000 x 7.5 = 375000; 2000 x 22.5 = 45000 -> 516000
    (SONNET45, {}, LC, 10000, False, {"input_tokens": 1000, "cache_read_input_tokens": 150_000, "output_tokens": 2000,
                                      **cw(m5=50_000)}, 516_000),
    # 100000 + 100000 = 200000, not above: 100000 x 3 + 100000 x 0.3 = 330000
    (SONNET45, {}, LC, 10000, False, {"input_tokens": 100_000, "cache_read_input_tokens": 100_000}, 330_000),
    # 10 + 200000 > 200K: 10 x 6 = 60; 200000 x 12 (1h write x2) = 2400000
    (SONNET45, {}, LC, 10000, False, {"input_tokens": 10, **cw(h1=200_000)}, 2_400_060),
    (SONNET46, {}, LC, 10000, False, {"input_tokens": 300_000}, 900_000),  # full 1M at standard: 300000 x 3
    (OPUS46, {}, LC, 10000, False, {"input_tokens": 300_000}, 1_500_000),  # full 1M at standard: 300000 x 5
    # Opus 4.6 fast + US + 1M beta (no long-context tier): 300000 x 5 x 6 x 1.1 = 9900000
    (OPUS46, FAST_US, LC, 10000, False, {"input_tokens": 300_000}, 9_900_000),
    # -- server tools: web search $10 per 1,000 (10000 micro-dollars each); web fetch has no per-use price
    (SONNET46, {}, [], 10000, False, {"input_tokens": 100, "output_tokens": 100, **tools(search=3)},
     31800),  # 300 + 1500 + 3 x 10000
    (HAIKU45, {}, [], 10000, False, tools(search=1), 10000),  # one search
    (SONNET46, {}, [], 10000, False, {"input_tokens": 10, **tools(fetch=5)}, 30),  # 10 x 3; fetches free
    # tools are not multiplied by data residency: 2 x 10000 + 1000 x 5 x 1.1 = 20000 + 5500
    (OPUS46, US, [], 10000, False, {"input_tokens": 1000, **tools(search=2, fetch=2)}, 25500),
    (OPUS46, FAST, [], 10000, False, {"output_tokens": 10, **tools(search=1)}, 11500),  # 10 x 150 + 10000
    # -- markup on everything, tools included
    (SONNET46, {}, [], 12000, False, {"input_tokens": 1000}, 3600),  # 3000 x 1.2
    (SONNET46, {}, [], 12000, False, tools(search=1), 12000),  # 10000 x 1.2
    (SONNET46, {}, [], 15000, False, {"cache_read_input_tokens": 1}, 1),  # 0.3 x 1.5 = 0.45 -> 1
    (OPUS46, FAST_US, [], 12345, False, {"input_tokens": 1}, 41),  # 5 x 6 x 1.1 x 1.2345 = 40.7385 -> 41
    (SONNET45, {}, LC, 11000, False, {"input_tokens": 200_001}, 1_320_007),  # 1200006 x 1.1 = 1320006.6 -> ..07
    # -- batch discount (x0.5), stacked with long context
    (SONNET45, {}, [], 10000, True, {"input_tokens": 1000, "output_tokens": 1000}, 9000),  # (3000 + 15000) / 2
    (SONNET45, {}, LC, 10000, True, {"input_tokens": 300_000}, 900_000),  # 300000 x 6 x 0.5
]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ModelPrice]:
    """The price table of a freshly migrated database, by model id."""
    path: Path = tmp_path_factory.mktemp("prices") / "prices.sqlite3"
    migrate(f"sqlite+aiosqlite:///{path}")
    with sqlite3.connect(path) as connection:
        connection.row_factory = sqlite3.Row
        return {row["id"]: ModelPrice.from_row(dict(row)) for row in connection.execute("SELECT * FROM models")}


def test_the_table_has_enough_cases():
    assert len(CASES) >= 40


@pytest.mark.parametrize(("model", "body", "betas", "markup", "batch", "reported", "expected"), CASES)
def test_golden(catalog, model, body, betas, markup, batch, reported, expected):
    price = dataclasses.replace(catalog[model], markup_bp=markup)
    flags = request_flags(body, betas)._replace(batch=batch)
    usage = Usage()
    usage.update(reported)
    assert cost(price, flags, usage).total_micro == expected


def test_components_of_the_mixed_ttl_example(catalog):
    usage = Usage()
    usage.update({"input_tokens": 2048, "cache_read_input_tokens": 1800, "output_tokens": 503, **cw(m5=148, h1=100),
                  **tools(search=2)})
    breakdown = cost(catalog[SONNET46], RequestFlags(), usage)
    assert breakdown.nano() == {"input": 6_144_000, "output": 7_545_000, "cache_write_5m": 555_000,
                                "cache_write_1h": 600_000, "cache_read": 540_000, "web_search": 20_000_000,
                                "web_fetch": 0}
    row = UsageRow(request_id="req_1", key_id="k", user_id=1, model=SONNET46, dialect="anthropic", status=200,
                   streamed=False, cost_micro=breakdown.total_micro)
    price_row(row, RequestFlags(), usage, breakdown)
    shown = cost_object(row)
    assert shown["total_micro"] == 35_384 and shown["components_micro"]["cache_write_5m"] == 555.0
    assert shown["server_tool_use"] == {"web_search_requests": 2, "web_fetch_requests": 0}


def test_a_component_smaller_than_a_nano_dollar_is_kept_rounded_up(catalog):
    usage = Usage(cache_read_tokens=1)  # Fable 5.1 with US-only: 0.275 micro-dollars = 275 nano-dollars
    assert cost(catalog[FABLE51], RequestFlags(us_only=True), usage).nano()["cache_read"] == 275


def test_flags_from_body_and_repeated_beta_headers():
    assert request_flags({"speed": "fast", "inference_geo": "us"}, ["a-1", " context-1m-2025-08-07 , b-2"]) == \
        RequestFlags(fast=True, us_only=True, long_context_beta=True)
    assert request_flags({"speed": "standard", "inference_geo": "global"}, ["context-1m-2025-08-07x"]) == RequestFlags()


def test_streamed_usage_folds_in_server_tools_cumulatively():
    usage = Usage()
    usage.update({"input_tokens": 10, "output_tokens": 1, **cw()})  # message_start
    usage.update({"output_tokens": 40, **tools(search=1)})  # a message_delta
    usage.update({"output_tokens": 90, "server_tool_use": {"web_search_requests": 2}})  # cumulative, not added
    assert (usage.output_tokens, usage.web_search_requests, usage.web_fetch_requests) == (90, 2, 0)


# -- property: the debit is the exact rational cost rounded up once --------------------------------

def exact_cost(price: ModelPrice, flags: RequestFlags, usage: Usage) -> Fraction:
    """The cost in micro-dollars as a fraction, written from the reference's rules, not from the code."""
    def bp(value: int | None, applies: bool) -> Fraction:
        return Fraction(value, 10_000) if applies and value is not None else Fraction(1)

    total_input = usage.input_tokens + usage.cache_read_tokens + usage.cache_write_5m_tokens + \
        usage.cache_write_1h_tokens
    long_context = (price.long_context_threshold is not None and flags.long_context_beta
                    and total_input > price.long_context_threshold)
    common = bp(price.us_geo_bp, flags.us_only) * bp(price.batch_bp, flags.batch) * Fraction(price.markup_bp, 10_000)
    inside = common * bp(price.long_context_input_bp, long_context) * bp(price.fast_input_bp, flags.fast)
    outside = common * bp(price.long_context_output_bp, long_context) * bp(price.fast_output_bp, flags.fast)
    per_million = Fraction(1, 1_000_000)
    tokens = (usage.input_tokens * price.input_price + usage.cache_read_tokens * price.cache_read_price
              + usage.cache_write_5m_tokens * price.cache_write_5m_price
              + usage.cache_write_1h_tokens * price.cache_write_1h_price) * per_million * inside
    tokens += usage.output_tokens * price.output_price * per_million * outside
    tools_cost = (usage.web_search_requests * price.web_search_price_micro
                  + usage.web_fetch_requests * price.web_fetch_price_micro) * Fraction(price.markup_bp, 10_000)
    return tokens + tools_cost


def ceil(value: Fraction) -> int:
    return -(-value.numerator // value.denominator)


counts = st.integers(min_value=0, max_value=2_000_000)


@settings(max_examples=300, deadline=None)
@given(model=st.sampled_from([SONNET46, SONNET45, OPUS46, OPUS45, HAIKU45, FABLE51, SONNET5]),
       flags=st.builds(RequestFlags, st.booleans(), st.booleans(), st.booleans(), st.booleans()),
       markup=st.integers(min_value=1, max_value=1_000_000),
       usage=st.builds(Usage, counts, counts, counts, counts, counts, st.integers(0, 500), st.integers(0, 500)))
def test_the_debit_is_the_exact_cost_rounded_up_once(catalog, model, flags, markup, usage):
    price = dataclasses.replace(catalog[model], markup_bp=markup)
    breakdown = cost(price, flags, usage)
    exact = exact_cost(price, flags, usage)
    assert breakdown.total_micro == ceil(exact)
    nano = breakdown.nano()
    assert set(nano) == set(COMPONENTS)
    assert ceil(exact * 1000) <= sum(nano.values()) < ceil(exact * 1000) + len(COMPONENTS)
