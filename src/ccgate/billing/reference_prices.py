"""Price modifiers from anthropic-api.md §7 that the base price table does not carry, per model id:
the seed of the catalog's long-context, fast-mode, data-residency, server-tool and batch columns."""

from __future__ import annotations

from typing import Any

from ccgate.dialects.models import REFERENCE_MODELS

# Sonnet 4.5 (and Sonnet 4, retired) with the 1M beta, above 200K input tokens: the whole request at
# $6 in / $22.50 out, i.e. x2 on input (cache writes and reads stack on it, §6.3) and x1.5 on output.
# Opus 4.6 and Sonnet 4.6 include the full 1M window at standard prices (the later docs).
LONG_CONTEXT = {"claude-sonnet-4-5-20250929": {
    "long_context_threshold": 200_000, "long_context_input_bp": 20_000, "long_context_output_bp": 15_000}}
# Fast mode on Opus 4.6: $30 in / $150 out against $5 / $25, x6 on both.
FAST_MODE = {"claude-opus-4-6": {"fast_input_bp": 60_000, "fast_output_bp": 60_000}}
# US-only inference: x1.1 on Opus 4.6 and every model released after it.
US_GEO_BP = 11_000
US_GEO_SINCE = "2026-02-05"  # Opus 4.6's release
# Per use: web search $10 per 1,000; web fetch has no price of its own in the reference (tokens only).
SERVER_TOOLS = {"web_search_price_micro": 10_000, "web_fetch_price_micro": 0}
BATCH_BP = 5_000  # Batch API: 50% off


def modifiers(model_id: str, created_at: str) -> dict[str, Any]:
    """Every modifier column's seed value for one model."""
    return {
        "long_context_threshold": None, "long_context_input_bp": 10_000, "long_context_output_bp": 10_000,
        **LONG_CONTEXT.get(model_id, {}),
        "fast_input_bp": None, "fast_output_bp": None, **FAST_MODE.get(model_id, {}),
        "us_geo_bp": US_GEO_BP if created_at >= US_GEO_SINCE else 10_000,
        **SERVER_TOOLS, "batch_bp": BATCH_BP,
    }


def reference_modifiers() -> dict[str, dict[str, Any]]:
    """The seed of every model in the reference table, by id."""
    return {spec.id: modifiers(spec.id, spec.created_at) for spec in REFERENCE_MODELS}
