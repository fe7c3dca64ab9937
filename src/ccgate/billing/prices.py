"""Model prices and the exact cost of a request in integer micro-dollars."""

from __future__ import annotations

from dataclasses import dataclass

PER_MILLION = 1_000_000
BASIS_POINTS = 10_000


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """A catalog model; prices are micro-dollars per million tokens, markup in basis points."""

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


@dataclass(slots=True)
class Usage:
    """Token counts of one request, as the upstream reported them."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0

    def update(self, reported: dict) -> None:
        """Fold in an Anthropic `usage` object; absent or null fields keep their value (§3.4)."""
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

    @property
    def cache_write_tokens(self) -> int:
        return self.cache_write_5m_tokens + self.cache_write_1h_tokens

    def writes_as_reads(self) -> Usage:
        """The same tokens with cache writes counted as reads: how a cache rebuilt because the
        gateway moved a session to another account is billed."""
        return Usage(self.input_tokens, self.output_tokens, self.cache_read_tokens + self.cache_write_tokens, 0, 0)


def cost_micro(price: ModelPrice, usage: Usage) -> int:
    """Exact cost: every product summed in millionths of a micro-dollar, marked up, rounded up once."""
    exact = (
        usage.input_tokens * price.input_price
        + usage.output_tokens * price.output_price
        + usage.cache_read_tokens * price.cache_read_price
        + usage.cache_write_5m_tokens * price.cache_write_5m_price
        + usage.cache_write_1h_tokens * price.cache_write_1h_price
    ) * price.markup_bp
    return -(-exact // (PER_MILLION * BASIS_POINTS))
