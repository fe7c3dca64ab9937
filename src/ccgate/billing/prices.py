"""Model prices and the exact cost of a request, per component, in integer arithmetic.

Token prices are micro-dollars per million tokens; multipliers are basis points (10000 is x1.0).
A component's exact value is an integer in micro-dollars / SCALE: every token price is multiplied
by one factor per multiplier slot (long context, fast mode, data residency, batch, markup; 10000
when a slot does not apply), so no division happens until the total is rounded up once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

from ccgate.store.rows import COST_COMPONENTS

PER_MILLION = 1_000_000
BASIS_POINTS = 10_000
MULTIPLIER_SLOTS = 5  # long context, fast mode, data residency, batch, markup
SCALE: int = PER_MILLION * BASIS_POINTS ** MULTIPLIER_SLOTS  # exact component units per micro-dollar
NANO_PER_MICRO = 1000
NANO_UNIT = SCALE // NANO_PER_MICRO  # exact component units per nano-dollar
COMPONENTS = COST_COMPONENTS
LONG_CONTEXT_BETA = "context-1m-2025-08-07"
LONG_CONTEXT_WINDOW = 1_000_000  # input tokens a model with a long-context tier takes under that beta


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """A catalog model with every price Anthropic charges for it (anthropic-api.md §6.3, §7).

    Token prices are micro-dollars per million tokens; `*_bp` are multipliers in basis points.
    Long context: a request whose total input (uncached + cache writes + cache reads) is above
    `long_context_threshold`, sent with the 1M-context beta, is priced whole at the long-context
    multipliers (None: the model has no such tier).  Fast mode (`speed: "fast"`) multiplies by
    `fast_*_bp` (None: no fast mode).  `us_geo_bp` applies to `inference_geo: "us"`.  Server tools
    cost `web_*_price_micro` per use.  `batch_bp` is the Batch API discount, kept for later.
    """

    id: str
    display_name: str
    created_at: str
    max_input_tokens: int
    max_tokens: int
    input_price: int
    output_price: int
    cache_write_5m_price: int
    cache_write_1h_price: int
    cache_read_price: int
    markup_bp: int = BASIS_POINTS
    aliases: tuple[str, ...] = ()
    long_context_threshold: int | None = None
    long_context_input_bp: int = BASIS_POINTS
    long_context_output_bp: int = BASIS_POINTS
    fast_input_bp: int | None = None
    fast_output_bp: int | None = None
    us_geo_bp: int = BASIS_POINTS
    web_search_price_micro: int = 10_000
    web_fetch_price_micro: int = 0
    batch_bp: int = 5_000

    @classmethod
    def from_row(cls, row: dict[str, Any], aliases: Iterable[str] = ()) -> ModelPrice:
        """A model from its `models` table row (extra columns such as `enabled` are ignored)."""
        names = {field.name for field in fields(cls)} - {"aliases"}
        return cls(**{name: row[name] for name in names if name in row}, aliases=tuple(aliases))


class RequestFlags(NamedTuple):
    """What a request asked for that changes its price (a tuple: hashed in C where rates are cached)."""

    fast: bool = False  # "speed": "fast"
    us_only: bool = False  # "inference_geo": "us"
    long_context_beta: bool = False  # anthropic-beta carries context-1m-2025-08-07
    batch: bool = False  # sent through the Batch API (no route yet)


NO_FLAGS = RequestFlags()


def request_flags(body: dict[str, Any], beta_headers: Sequence[str] = ()) -> RequestFlags:
    """The price flags of an Anthropic request body and its `anthropic-beta` header values (the header
    may be repeated and each value is a comma-separated list)."""
    fast, us_only = body.get("speed") == "fast", body.get("inference_geo") == "us"
    long_context_beta = bool(beta_headers) and LONG_CONTEXT_BETA in {
        beta.strip() for header in beta_headers for beta in header.split(",")}
    if not (fast or us_only or long_context_beta):
        return NO_FLAGS  # most requests: one shared value, nothing built
    return RequestFlags(fast=fast, us_only=us_only, long_context_beta=long_context_beta)


@dataclass(slots=True)
class Usage:
    """Token counts and server tool uses of one request, as the upstream reported them."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    web_search_requests: int = 0
    web_fetch_requests: int = 0

    def update(self, reported: dict[str, Any]) -> None:
        """Fold in an Anthropic `usage` object; absent or null fields keep their value (§3.4). All its
        counts are cumulative, `server_tool_use` too, so each replaces the one before."""
        if (value := reported.get("input_tokens")) is not None:
            self.input_tokens = value
        if (value := reported.get("output_tokens")) is not None:
            self.output_tokens = value
        if (value := reported.get("cache_read_input_tokens")) is not None:
            self.cache_read_tokens = value
        breakdown = reported.get("cache_creation")
        if breakdown:
            self.cache_write_5m_tokens = breakdown.get("ephemeral_5m_input_tokens") or 0
            self.cache_write_1h_tokens = breakdown.get("ephemeral_1h_input_tokens") or 0
        elif (value := reported.get("cache_creation_input_tokens")) is not None:
            self.cache_write_5m_tokens, self.cache_write_1h_tokens = value, 0
        tools = reported.get("server_tool_use")
        if tools:
            if (value := tools.get("web_search_requests")) is not None:
                self.web_search_requests = value
            if (value := tools.get("web_fetch_requests")) is not None:
                self.web_fetch_requests = value

    @property
    def cache_write_tokens(self) -> int:
        return self.cache_write_5m_tokens + self.cache_write_1h_tokens

    @property
    def total_input_tokens(self) -> int:
        """Every input token, cached or not: what the long-context threshold is compared with."""
        return self.input_tokens + self.cache_write_tokens + self.cache_read_tokens

    def writes_as_reads(self) -> Usage:
        """The same tokens with cache writes counted as reads: how a cache rebuilt because the
        gateway moved a session to another account is billed."""
        return Usage(self.input_tokens, self.output_tokens, self.cache_read_tokens + self.cache_write_tokens, 0, 0,
                     self.web_search_requests, self.web_fetch_requests)


class CostBreakdown(NamedTuple):
    """A request's cost per component, exact, in micro-dollars / SCALE, markup included (a tuple: one
    is made per request, and a tuple is made in C)."""

    input: int
    output: int
    cache_write_5m: int
    cache_write_1h: int
    cache_read: int
    web_search: int
    web_fetch: int
    long_context: bool  # the whole request was priced at the long-context tier

    @property
    def exact(self) -> int:
        return sum(self[:7])

    @property
    def total_micro(self) -> int:
        """The debit: the exact sum rounded up once to a micro-dollar."""
        return -(-self.exact // SCALE)

    def values(self) -> tuple[int, ...]:
        """The components in COMPONENTS' order."""
        return self[:7]

    def components(self) -> dict[str, int]:
        return dict(zip(COMPONENTS, self.values(), strict=True))

    def nano(self) -> dict[str, int]:
        """Each component rounded up to nano-dollars (1/1000 micro-dollar): the stored form."""
        return dict(zip(COMPONENTS, self.nano_values(), strict=True))

    def nano_values(self) -> list[int]:
        """`nano()`'s values, in COMPONENTS' order."""
        unit = NANO_UNIT
        return [-(-value // unit) for value in self[:7]]


class Rates(CostBreakdown):
    """What one unit of each component costs a request, in micro-dollars / SCALE: the model's prices
    times every multiplier that applies to it (a breakdown of one token, or one tool use, of each).
    A cost is then one product per component."""

    __slots__ = ()

    def of(self, usage: Usage) -> CostBreakdown:
        return CostBreakdown(
            usage.input_tokens * self.input, usage.output_tokens * self.output,
            usage.cache_write_5m_tokens * self.cache_write_5m, usage.cache_write_1h_tokens * self.cache_write_1h,
            usage.cache_read_tokens * self.cache_read, usage.web_search_requests * self.web_search,
            usage.web_fetch_requests * self.web_fetch, self.long_context)


def context_window(price: ModelPrice, flags: RequestFlags) -> int:
    """The input tokens a request may carry: the 1M beta widens a model that has a long-context tier."""
    if flags.long_context_beta and price.long_context_threshold is not None:
        return max(price.max_input_tokens, LONG_CONTEXT_WINDOW)
    return price.max_input_tokens


def is_long_context(price: ModelPrice, flags: RequestFlags, usage: Usage) -> bool:
    threshold = price.long_context_threshold
    return threshold is not None and flags.long_context_beta and usage.total_input_tokens > threshold


def _factor(applies: bool, multiplier_bp: int | None) -> int:
    """A multiplier slot: the model's multiplier when it applies and the model has one, else x1.0."""
    return multiplier_bp if applies and multiplier_bp is not None else BASIS_POINTS


def _rates(price: ModelPrice, flags: RequestFlags, long_context: bool) -> Rates:
    common = (_factor(flags.us_only, price.us_geo_bp) * _factor(flags.batch, price.batch_bp) * price.markup_bp)
    input_side = (common * _factor(long_context, price.long_context_input_bp)
                  * _factor(flags.fast, price.fast_input_bp))
    output_side = (common * _factor(long_context, price.long_context_output_bp)
                   * _factor(flags.fast, price.fast_output_bp))
    per_use = price.markup_bp * (SCALE // BASIS_POINTS)  # server tools: markup only, no token multiplier
    return Rates(price.input_price * input_side, price.output_price * output_side,
                 price.cache_write_5m_price * input_side, price.cache_write_1h_price * input_side,
                 price.cache_read_price * input_side, price.web_search_price_micro * per_use,
                 price.web_fetch_price_micro * per_use, long_context)


_RATES: dict[tuple[str, RequestFlags, bool], tuple[ModelPrice, Rates]] = {}


def rates(price: ModelPrice, flags: RequestFlags, long_context: bool) -> Rates:
    """The rates of a model for a request, worked out once per model, flags and tier (a catalog
    reload brings new ModelPrice objects, which are worked out afresh)."""
    cached = _RATES.get((price.id, flags, long_context))
    if cached is not None and cached[0] is price:
        return cached[1]
    if len(_RATES) > 4096:  # models come and go with catalog edits: never let old ones pile up
        _RATES.clear()
    found = _rates(price, flags, long_context)
    _RATES[(price.id, flags, long_context)] = (price, found)
    return found


def cost(price: ModelPrice, flags: RequestFlags, usage: Usage, *, long_context: bool | None = None) -> CostBreakdown:
    """Every component at its price times the multipliers that apply (all in exact integers).  Whether
    the long-context tier applies is decided from `usage` unless given (pricing a sum of requests)."""
    if long_context is None:
        long_context = price.long_context_threshold is not None and is_long_context(price, flags, usage)
    return rates(price, flags, long_context).of(usage)


def cost_micro(price: ModelPrice, usage: Usage, flags: RequestFlags = NO_FLAGS) -> int:
    """Exact cost, marked up, rounded up once to a micro-dollar."""
    return cost(price, flags, usage).total_micro
