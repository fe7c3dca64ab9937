"""A request's price flags and cost per component: into its usage row, and back out for the API."""

from __future__ import annotations

from typing import Any

from ccgate.billing.prices import COMPONENTS, NANO_PER_MICRO, CostBreakdown, RequestFlags, Usage
from ccgate.store.rows import USAGE_COST_COLUMNS, UsageRow


def cost_columns(flags: RequestFlags, usage: Usage, breakdown: CostBreakdown) -> dict[str, Any]:
    """The usage-row columns this module owns, to merge into the row the ledger writer commits."""
    return {
        "speed": "fast" if flags.fast else None, "inference_geo": "us" if flags.us_only else None,
        "long_context": breakdown.long_context,
        "web_search_requests": usage.web_search_requests, "web_fetch_requests": usage.web_fetch_requests,
        **dict(zip(USAGE_COST_COLUMNS, breakdown.nano().values(), strict=True)),
    }


def scaled_to(breakdown: CostBreakdown, price_micro: int) -> dict[str, int]:
    """The component columns of a request billed `price_micro` instead of its list cost (a cache hit):
    each list component scaled by the same ratio, rounded up to nano-dollars, so per-component reports
    sum to what was debited."""
    exact = breakdown.exact
    if not exact:
        return {f"cost_{name}_nano": 0 for name in COMPONENTS}
    return {f"cost_{name}_nano": -(-value * price_micro * NANO_PER_MICRO // exact)
            for name, value in breakdown.components().items()}


def cost_object(row: UsageRow) -> dict[str, Any]:
    """The `cost` object of GET /v1/usage/{id}: each component in micro-dollars (to 1/1000, marked up),
    the debited total, and the flags that priced them.  The total is the components' exact sum rounded
    up once to a micro-dollar, so the shown components differ from it by under a micro-dollar plus 7 nano-dollars."""
    return {
        "total_micro": row.cost_micro, "total_usd": row.cost_micro / 1_000_000,
        "components_micro": {name: getattr(row, f"cost_{name}_nano") / NANO_PER_MICRO for name in COMPONENTS},
        "long_context": bool(row.long_context), "speed": row.speed or "standard",
        "inference_geo": row.inference_geo,
        "server_tool_use": {"web_search_requests": row.web_search_requests,
                            "web_fetch_requests": row.web_fetch_requests},
    }
