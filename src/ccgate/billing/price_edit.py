"""An operator's change to a model's price modifiers, checked and turned into `models` column values
(for `ops.update_model`, the CLI, the admin API and the console to share)."""

from __future__ import annotations

from collections.abc import Mapping

from ccgate.billing.prices import BASIS_POINTS

# Operator name -> column.  Multipliers are given as numbers such as 1.1; None removes fast mode.
MULTIPLIERS = {"long_context_input": "long_context_input_bp", "long_context_output": "long_context_output_bp",
               "fast_input": "fast_input_bp", "fast_output": "fast_output_bp", "us_geo": "us_geo_bp",
               "batch": "batch_bp"}
OPTIONAL = {"fast_input", "fast_output", "long_context_threshold"}  # None is meaningful for these
PER_USE_USD = {"web_search_usd": "web_search_price_micro", "web_fetch_usd": "web_fetch_price_micro"}
MAX_MULTIPLIER = 100
MAX_PER_USE_USD = 1_000


class PriceEditError(ValueError):
    """A change the catalog cannot take; the message says what is allowed."""


def modifier_values(changes: Mapping[str, float | int | None]) -> dict[str, int | None]:
    """Column values for `changes` (operator name -> value), or PriceEditError naming the first bad one."""
    values: dict[str, int | None] = {}
    for name, value in changes.items():
        if value is None:
            if name not in OPTIONAL:
                raise PriceEditError(f"{name} cannot be empty")
            values[MULTIPLIERS.get(name, name)] = None
        elif name in MULTIPLIERS:
            if not 0 < value <= MAX_MULTIPLIER:
                raise PriceEditError(f"{name}: a multiplier above 0 and at most {MAX_MULTIPLIER}, e.g. 1.1")
            values[MULTIPLIERS[name]] = round(value * BASIS_POINTS)
        elif name in PER_USE_USD:
            if not 0 <= value <= MAX_PER_USE_USD:
                raise PriceEditError(f"{name}: a price per use from $0 to ${MAX_PER_USE_USD}")
            values[PER_USE_USD[name]] = round(value * 1_000_000)
        elif name == "long_context_threshold":
            if value != int(value) or value < 1:
                raise PriceEditError("long_context_threshold: a whole number of input tokens, at least 1")
            values[name] = int(value)
        else:
            raise PriceEditError(f"unknown price modifier {name}; known: "
                                 + ", ".join(sorted([*MULTIPLIERS, *PER_USE_USD, "long_context_threshold"])))
    return values
