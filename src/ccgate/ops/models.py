"""The model catalogue: availability, list prices and markup."""

from __future__ import annotations

import math
from typing import Any

from ccgate.billing.price_edit import MULTIPLIERS, PER_USE_USD, PriceEditError, modifier_values
from ccgate.ops.common import OperationError, OperationsBase, usd_to_micro
from ccgate.store import repo

MODIFIERS = ("long_context_threshold", *MULTIPLIERS, *PER_USE_USD)  # operator names of the price modifiers
PRICE_COLUMNS = ("input_price", "output_price", "cache_write_5m_price", "cache_write_1h_price", "cache_read_price")


class ModelOperations(OperationsBase):
    async def models(self) -> list[dict[str, Any]]:
        """Every model, enabled or not, with its aliases and prices."""
        async with self.engine.connect() as conn:
            return [{**row, "aliases": aliases} for row, aliases in await repo.models_with_aliases(conn)]

    async def update_model(self, model_id: str, *, prices_usd: dict[str, float] | None = None,
                           markup: float | None = None, enabled: bool | None = None,
                           modifiers: dict[str, float | int | None] | None = None) -> None:
        """Change a model's list prices (USD per million tokens), markup multiplier, availability or
        price modifiers (billing.price_edit: long context, fast mode, US-only, server tools, batch)."""
        if any(value is not None and not math.isfinite(value) for value in (modifiers or {}).values()):
            raise OperationError("a price modifier is a finite number")
        try:
            values: dict[str, Any] = modifier_values(modifiers or {})
        except PriceEditError as error:
            raise OperationError(str(error)) from None
        for column, usd in (prices_usd or {}).items():
            if column not in PRICE_COLUMNS or not 0 <= usd <= 1_000_000:
                raise OperationError(f"{column.replace('_', ' ')}: a price is $0 to $1,000,000 per million tokens")
            values[column] = usd_to_micro(usd)
        if markup is not None:
            if not 0 < markup <= 100:
                raise OperationError("markup is a multiplier above 0 and at most 100, e.g. 1.2")
            values["markup_bp"] = round(markup * 10_000)
        if enabled is not None:
            values["enabled"] = enabled
        if not values:
            raise OperationError("nothing to change")
        async with self._changing() as conn:
            if not await repo.update_model(conn, model_id, values):
                raise OperationError(f"no model {model_id}")
