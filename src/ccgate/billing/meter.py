"""A streaming answer's use, counted as it arrives: for the live floor and for abandoned streams.

The upstream reports input (and cache) tokens at `message_start` and output tokens only in
`message_delta`, usually once at the end.  In between, output is counted locally from each
`content_block_delta` event (text, thinking, tool input JSON): the event's bytes less its fixed
framing, over BYTES_PER_TOKEN rounded up, at least one token per delta.  The upstream's own count
wins once reported (`output_tokens` is the larger of the two), so the local count only matters for
the live floor while streaming and for a stream that ends before the upstream said how much it made.
"""

from __future__ import annotations

from dataclasses import replace

import orjson

from ccgate.billing.prices import SCALE, ModelPrice, RequestFlags, Usage, cost, is_long_context
from ccgate.dialects.sse import event_data, event_name

BYTES_PER_TOKEN = 4  # English prose and code average ~4 bytes a token; JSON escapes only add bytes
# The event's framing less its payload: `event: content_block_delta`, `data: ` and
# {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":""}} (113 bytes), a little less
# so that a delta's count errs high rather than low.
DELTA_ENVELOPE_BYTES = 110
UNLIMITED = 1 << 62


def delta_tokens(event_size: int) -> int:
    """Output tokens a content delta event of `event_size` bytes stands for (an estimate)."""
    return max(1, -(-(event_size - DELTA_ENVELOPE_BYTES) // BYTES_PER_TOKEN))


class StreamMeter:
    """Folds a stream's events into its Usage and counts its output as it goes."""

    __slots__ = ("usage", "counted", "reported")

    def __init__(self, usage: Usage) -> None:
        self.usage = usage
        self.counted = 0  # output tokens counted from content deltas
        self.reported = 0  # output tokens the upstream last reported

    @property
    def output_tokens(self) -> int:
        """The output produced so far: the upstream's count, or the local one when that is larger."""
        return max(self.counted, self.reported)

    def feed(self, blocks: list[bytes]) -> tuple[bool, str | None, bool]:
        """Take in whole events: (answer over, error type, usage reported)."""
        over, error_type, reported = False, None, False
        for block in blocks:
            name = event_name(block)
            if name == b"content_block_delta":
                self.counted += delta_tokens(len(block))
            elif name == b"message_start":
                self.usage.update(orjson.loads(event_data(block))["message"].get("usage") or {})
                self.reported, reported = self.usage.output_tokens, True
            elif name == b"message_delta":
                self.usage.update(orjson.loads(event_data(block)).get("usage") or {})
                self.reported, reported = self.usage.output_tokens, True
            elif name == b"message_stop":
                over = True
            elif name == b"error":
                error_type = (orjson.loads(event_data(block)).get("error") or {}).get("type", "error")
                over = True
        return over, error_type, reported

    def bill_produced(self) -> None:
        """The stream ended before the upstream's final count (abandoned, cut, broken): bill what the
        local count says was produced when it is more than the upstream reported."""
        self.usage.output_tokens = self.output_tokens


def budget_tokens(usage: Usage, output_tokens: int) -> int:
    """Tokens a request spends of a token budget: input, cache writes and output (reads are free)."""
    return usage.input_tokens + usage.cache_write_tokens + output_tokens


def output_allowance(model: ModelPrice, flags: RequestFlags, usage: Usage, hold_micro: int | None,
                     reserve_tokens: int | None) -> int:
    """How many output tokens fit in the hold and the token reservation, given the input (and server
    tools) `usage` reports so far; negative when even the input does not fit.  None limits nothing."""
    allowance = UNLIMITED
    if hold_micro is not None:
        long_context = is_long_context(model, flags, usage)
        fixed = cost(model, flags, replace(usage, output_tokens=0), long_context=long_context).exact
        per_token = cost(model, flags, Usage(output_tokens=1), long_context=long_context).exact
        room = hold_micro * SCALE - fixed
        allowance = room // per_token if per_token else (UNLIMITED if room >= 0 else -1)
    if reserve_tokens is not None:
        allowance = min(allowance, reserve_tokens - budget_tokens(usage, 0))
    return allowance
