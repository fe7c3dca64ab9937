"""Pure pieces of admission and billing, checked without a server."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccgate.billing.prices import ModelPrice, Usage, cost_micro
from ccgate.gate.durations import describe_wait, describe_window, parse_duration
from ccgate.state import memory
from ccgate.state.base import Limits

SONNET = ModelPrice("claude-sonnet-4-6", "Claude Sonnet 4.6", "2026-02-17T00:00:00Z", 1_000_000, 64_000,
                    3_000_000, 15_000_000, 3_750_000, 6_000_000, 300_000)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


def limits(**overrides) -> Limits:
    values = dict(key_id="k", user_id=1, rpm=None, concurrency=None, token_budget=None, window_seconds=3600,
                  reserve_tokens=0, hold_micro=None)
    return Limits(**{**values, **overrides})


def test_rpm_window_slides_so_no_burst_of_2n_at_a_minute_boundary(monkeypatch):
    clock = Clock(1_000_059.9)  # 0.1 s before a minute boundary
    monkeypatch.setattr(memory, "time", clock)
    state = memory.MemoryState()
    for _ in range(5):
        assert asyncio.run(state.admit(limits(rpm=5))).admitted
    clock.now += 0.2  # a fixed per-minute window would be empty again here
    refused = asyncio.run(state.admit(limits(rpm=5)))
    assert not refused.admitted and refused.refused_by == "rpm"
    assert refused.retry_after == pytest.approx(59.8)
    clock.now += 59.9
    assert asyncio.run(state.admit(limits(rpm=5))).admitted


def test_token_buckets_roll_out_one_minute_at_a_time(monkeypatch):
    clock = Clock(1_000_000.0)
    monkeypatch.setattr(memory, "time", clock)
    window = memory.TokenWindow()
    window.add(clock.now, 100)
    clock.now += 120
    window.add(clock.now, 50)
    clock.now += 3600 - 120 + 61  # the first bucket has left a one-hour window, the second has not
    window.prune(clock.now, 3600)
    assert window.used() == 50


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6),
       st.integers(0, 10**6))
def test_cost_is_exact_and_rounded_up_once(inp, out, read, w5, w1):
    usage = Usage(inp, out, read, w5, w1)
    exact_millionths = inp * 3_000_000 + out * 15_000_000 + read * 300_000 + w5 * 3_750_000 + w1 * 6_000_000
    assert cost_micro(SONNET, usage) == -(-exact_millionths // 1_000_000)


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("30m", 1800), ("5h", 18000), ("1d", 86400), ("45", 45)])
def test_durations_parse(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0h", "5x", "-5m", "h"])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_durations_read_like_the_seed():
    assert describe_window(18000) == "5h rolling"
    assert describe_wait(2 * 3600 + 15 * 60) == "2h 15m"
    assert describe_wait(12.2) == "13s"
