"""Anthropic's public model table (anthropic-api.md §6.2, §7): the one reference both the
simulator and the gateway's price catalog are seeded from."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One Claude model as Anthropic lists it; prices are USD per million tokens."""

    id: str
    display_name: str
    created_at: str
    max_input_tokens: int
    max_tokens: int
    input_price: float
    output_price: float
    cache_write_5m_price: float
    cache_write_1h_price: float
    cache_read_price: float
    min_cacheable_tokens: int
    adaptive_thinking_only: bool = False
    aliases: tuple[str, ...] = field(default=())


def _spec(id_: str, name: str, created: str, ctx: int, out: int, price: tuple[float, float],
          min_cache: int, *, aliases: tuple[str, ...] = (), read_multiplier: float = 0.1,
          adaptive_only: bool = False) -> ModelSpec:
    """Build a spec from base input/output prices with the standard cache multipliers (§6.3)."""
    inp, outp = price
    return ModelSpec(
        id=id_, display_name=name, created_at=created, max_input_tokens=ctx, max_tokens=out,
        input_price=inp, output_price=outp, cache_write_5m_price=inp * 1.25,
        cache_write_1h_price=inp * 2, cache_read_price=round(inp * read_multiplier, 6),
        min_cacheable_tokens=min_cache, adaptive_thinking_only=adaptive_only, aliases=aliases,
    )


K200, M1 = 200_000, 1_000_000

# Newest first, as GET /v1/models lists them.  Dates the reference does not give are approximate.
REFERENCE_MODELS: tuple[ModelSpec, ...] = (
    _spec("claude-fable-5-1", "Claude Fable 5.1", "2026-08-28T00:00:00Z", M1, 128_000, (10, 50), 512,
          read_multiplier=0.025, adaptive_only=True),
    _spec("claude-opus-5", "Claude Opus 5", "2026-07-24T00:00:00Z", M1, 128_000, (5, 25), 512,
          adaptive_only=True),
    _spec("claude-sonnet-5", "Claude Sonnet 5", "2026-06-30T00:00:00Z", M1, 128_000, (2, 10), 1024,
          adaptive_only=True),
    _spec("claude-fable-5", "Claude Fable 5", "2026-06-09T00:00:00Z", M1, 128_000, (10, 50), 512,
          adaptive_only=True),
    _spec("claude-mythos-5", "Claude Mythos 5", "2026-06-09T00:00:00Z", M1, 128_000, (10, 50), 512,
          aliases=("claude-mythos-preview",), adaptive_only=True),
    _spec("claude-opus-4-8", "Claude Opus 4.8", "2026-05-28T00:00:00Z", M1, 128_000, (5, 25), 1024,
          adaptive_only=True),
    _spec("claude-opus-4-7", "Claude Opus 4.7", "2026-04-14T00:00:00Z", M1, 128_000, (5, 25), 2048,
          adaptive_only=True),
    _spec("claude-sonnet-4-6", "Claude Sonnet 4.6", "2026-02-17T00:00:00Z", M1, 64_000, (3, 15), 1024),
    _spec("claude-opus-4-6", "Claude Opus 4.6", "2026-02-05T00:00:00Z", M1, 128_000, (5, 25), 4096),
    _spec("claude-opus-4-5-20251101", "Claude Opus 4.5", "2025-11-24T00:00:00Z", K200, 64_000, (5, 25),
          4096, aliases=("claude-opus-4-5",)),
    _spec("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-15T00:00:00Z", K200, 64_000, (1, 5),
          4096, aliases=("claude-haiku-4-5",)),
    _spec("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z", K200, 64_000,
          (3, 15), 1024, aliases=("claude-sonnet-4-5",)),
)


def reference_by_name() -> dict[str, ModelSpec]:
    """Every id and alias of the reference table, mapped to its model."""
    table: dict[str, ModelSpec] = {}
    for spec in REFERENCE_MODELS:
        table[spec.id] = spec
        for alias in spec.aliases:
            table[alias] = spec
    return table
