"""Operator edits of price modifiers become catalog columns, or are refused with a useful message."""

from __future__ import annotations

import pytest

from ccgate.billing.price_edit import PriceEditError, modifier_values


def test_multipliers_prices_per_use_and_the_threshold_become_columns():
    assert modifier_values({"us_geo": 1.1, "fast_input": 6, "fast_output": None, "web_search_usd": 0.01,
                            "long_context_threshold": 200_000, "batch": 0.5}) == {
        "us_geo_bp": 11_000, "fast_input_bp": 60_000, "fast_output_bp": None, "web_search_price_micro": 10_000,
        "long_context_threshold": 200_000, "batch_bp": 5_000}


@pytest.mark.parametrize(("changes", "message"), [
    ({"us_geo": 0}, "us_geo: a multiplier above 0"),
    ({"us_geo": None}, "us_geo cannot be empty"),
    ({"web_fetch_usd": -1}, "web_fetch_usd: a price per use"),
    ({"long_context_threshold": 0.5}, "long_context_threshold: a whole number"),
    ({"speed": 2}, "unknown price modifier speed; known: batch, fast_input"),
])
def test_bad_edits_are_refused(changes, message):
    with pytest.raises(PriceEditError, match=message):
        modifier_values(changes)
