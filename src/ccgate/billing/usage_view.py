"""A request's price flags and cost per component: into its usage row, and back out for the API."""

from __future__ import annotations

from typing import Any

from ccgate.billing.prices import COMPONENTS, NANO_PER_MICRO, CostBreakdown, RequestFlags, Usage
from ccgate.store.rows import UsageRow


def price_row(row: UsageRow, flags: RequestFlags, usage: Usage, breakdown: CostBreakdown,
              billed_micro: int | None = None) -> None:
    """Set the usage-row columns this module owns: the price flags, server tool uses and each cost
    component; for a request billed `billed_micro` instead of its list cost (a cache hit), each list
    component scaled by the same ratio, rounded up to nano-dollars, so per-component reports sum to
    what was debited."""
    row.speed = "fast" if flags.fast else None
    row.inference_geo = "us" if flags.us_only else None
    row.long_context = breakdown.long_context
    row.web_search_requests = usage.web_search_requests
    row.web_fetch_requests = usage.web_fetch_requests
    if billed_micro is None:
        nano = breakdown.nano_values()
    else:
        exact = breakdown.exact
        nano = [-(-value * billed_micro * NANO_PER_MICRO // exact) if exact else 0 for value in breakdown.values()]
    (row.cost_input_nano, row.cost_output_nano, row.cost_cache_write_5m_nano, row.cost_cache_write_1h_nano,
     row.cost_cache_read_nano, row.cost_web_search_nano, row.cost_web_fetch_nano) = nano


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
