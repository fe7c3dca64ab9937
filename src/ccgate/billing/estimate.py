"""What a request will likely cost, for admission to hold: expected use, not the worst case.

A hold is what admission sets aside from a prepaid balance (and a reservation from a token budget)
while the request runs; settlement replaces it with the exact cost.  Holding the worst case
(every byte a token, every token a 1-hour cache write, all of max_tokens) asks $2.77 of a Claude
Code request on Opus 4.6 that really costs $0.04-0.18, so users with a few dollars cannot work.
This module holds the likely cost instead; the floor enforced while the request streams (see
docs/billing.md) bounds what happens when a request costs more than its hold.

The estimate, for a request of `body_size` bytes with `max_tokens`:

- input tokens = body_size x the key's tokens-per-byte ratio (learned from its own settled requests:
  total input tokens / body bytes; DEFAULT_TOKENS_PER_BYTE before the first), at most the model's
  context window (1M under the long-context beta for a model with a long-context tier);
- how that input splits into uncached, cache-written and cache-read tokens: the key's learned shares;
  before its first settled request, all of it a cache write (a first request writes its prefix);
- cache writes at the 1-hour price when the body asks for a 1-hour TTL (`"ttl":"1h"` in its bytes),
  at the 5-minute price otherwise;
- output tokens = the key's typical output (learned; DEFAULT_OUTPUT_TOKENS before the first), at most
  max_tokens;
- priced by `prices.cost` with the request's flags, so fast mode, long context, US-only inference and
  markup apply exactly as they will at settlement.

Learned figures are running averages over a key's settled requests in which each new request counts
a quarter (KEEP), so a key that changes its habits is followed within a few requests; the ratios are
weighted by size, and output is learned per model (see KeyHistory).
The token reservation is the same expected usage counted as a token budget counts it (input, cache
writes and output; cache reads are free).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import NamedTuple

from ccgate.billing.prices import ModelPrice, RequestFlags, Usage, context_window, cost

DEFAULT_TOKENS_PER_BYTE = 0.3  # JSON with prose and code: ~3.3 bytes a token (measured ~4 on Claude Code bodies)
DEFAULT_OUTPUT_TOKENS = 4096  # a long answer or a few tool calls; Claude Code turns average well under this
KEEP = 0.75  # each settled request keeps this much of what the ones before it taught
MAX_KEYS = 100_000  # keys remembered; the least recently settled one is forgotten beyond this
ONE_HOUR_TTL = re.compile(rb'"ttl"\s*:\s*"1h"')


def asks_for_1h_cache(body: bytes) -> bool:
    """Does the request body ask for a 1-hour cache TTL anywhere (a byte search, no parse)?"""
    return ONE_HOUR_TTL.search(body) is not None


@dataclass(slots=True)
class KeyHistory:
    """What a key's settled requests taught: running sums in which each new request counts 1 - KEEP of
    the past.  Ratios are weighted by size, so a key's tiny requests (Claude Code's quota checks and
    titles) barely move what its big ones taught; output is learned per model, as the small model's
    short answers say nothing of the main model's.  The means an estimate reads are worked out when a
    request is learned, not at each admission."""

    input_tokens: float = 0.0  # decayed sums: input tokens (cached or not), of which read and written,
    read_tokens: float = 0.0  # over the body bytes they came in
    written_tokens: float = 0.0
    body_bytes: float = 0.0
    outputs: dict[str, tuple[float, float]] = field(default_factory=dict)  # model id -> (tokens, requests)
    input_per_byte: float = DEFAULT_TOKENS_PER_BYTE  # the means, as of the last request learned
    read_fraction: float = 0.0
    write_fraction: float = 1.0
    typical_outputs: dict[str, float] = field(default_factory=dict)

    def learn(self, body_size: int, model_id: str, usage: Usage) -> None:
        written = usage.cache_write_5m_tokens + usage.cache_write_1h_tokens
        total_input = usage.input_tokens + usage.cache_read_tokens + written
        if body_size > 0 and total_input > 0:
            self.input_tokens = self.input_tokens * KEEP + total_input
            self.read_tokens = self.read_tokens * KEEP + usage.cache_read_tokens
            self.written_tokens = self.written_tokens * KEEP + written
            self.body_bytes = self.body_bytes * KEEP + body_size
            self.input_per_byte = self.input_tokens / self.body_bytes
            self.read_fraction = self.read_tokens / self.input_tokens
            self.write_fraction = self.written_tokens / self.input_tokens
        tokens, requests = self.outputs.get(model_id, (0.0, 0.0))
        tokens, requests = tokens * KEEP + usage.output_tokens, requests * KEEP + 1
        self.outputs[model_id] = (tokens, requests)
        self.typical_outputs[model_id] = tokens / requests

    def typical_output(self, model_id: str) -> float:
        return self.typical_outputs.get(model_id, DEFAULT_OUTPUT_TOKENS)


FRESH = KeyHistory()


class Estimate(NamedTuple):
    """The likely usage of a request, its cost (micro-dollars, markup included) and token reservation."""

    usage: Usage
    cost_micro: int
    reserve_tokens: int


def expected_usage(history: KeyHistory, body_size: int, model: ModelPrice, max_tokens: int, flags: RequestFlags,
                   wants_1h_cache: bool) -> Usage:
    """The usage a request is expected to report, from the key's history."""
    total_input = min(round(body_size * history.input_per_byte), context_window(model, flags))
    read = round(total_input * history.read_fraction)
    write = min(round(total_input * history.write_fraction), total_input - read)
    output = min(round(history.typical_outputs.get(model.id, DEFAULT_OUTPUT_TOKENS)), max_tokens)
    if wants_1h_cache:
        return Usage(total_input - read - write, output, read, 0, write)
    return Usage(total_input - read - write, output, read, write, 0)


def estimate(history: KeyHistory, body_size: int, model: ModelPrice, max_tokens: int, flags: RequestFlags,
             wants_1h_cache: bool) -> Estimate:
    """What to hold for a request (see the module's docstring)."""
    usage = expected_usage(history, body_size, model, max_tokens, flags, wants_1h_cache)
    reserve = usage.input_tokens + usage.cache_write_5m_tokens + usage.cache_write_1h_tokens + usage.output_tokens
    return Estimate(usage, cost(model, flags, usage).total_micro, reserve)


class UsageEstimator:
    """Each key's history, learned from its settled requests, held in memory by one process."""

    def __init__(self, max_keys: int = MAX_KEYS) -> None:
        self._histories: OrderedDict[str, KeyHistory] = OrderedDict()
        self._max_keys = max_keys

    def history(self, key_id: str) -> KeyHistory:
        return self._histories.get(key_id, FRESH)

    def observe(self, key_id: str, body_size: int, model_id: str, usage: Usage) -> None:
        """Learn from a settled request (one that reached the upstream and reported usage)."""
        history = self._histories.pop(key_id, None) or KeyHistory()
        history.learn(body_size, model_id, usage)
        self._histories[key_id] = history
        if len(self._histories) > self._max_keys:
            self._histories.popitem(last=False)

    def estimate(self, key_id: str, body_size: int, model: ModelPrice, max_tokens: int, flags: RequestFlags,
                 wants_1h_cache: bool) -> Estimate:
        return estimate(self._histories.get(key_id, FRESH), body_size, model, max_tokens, flags, wants_1h_cache)
