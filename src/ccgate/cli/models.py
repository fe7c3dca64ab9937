"""`ccgate models`: the catalog's list prices, markup and price modifiers."""

from __future__ import annotations

import argparse
from typing import Any

from ccgate.cli.common import command, dollars, group, usd, with_operations
from ccgate.ops import MODIFIERS, PRICE_COLUMNS, OperationError, Operations

PRICE_FLAGS = {column: column.removesuffix("_price") + "_usd_per_mtok" for column in PRICE_COLUMNS}
# Modifier flags: the name the operation takes -> the flag's short form (multipliers end in -x).
MODIFIER_FLAGS = {"long_context_threshold": "long-context-threshold", "long_context_input": "long-context-input-x",
                  "long_context_output": "long-context-output-x", "fast_input": "fast-input-x",
                  "fast_output": "fast-output-x", "us_geo": "us-only-x", "batch": "batch-x",
                  "web_search_usd": "web-search-usd", "web_fetch_usd": "web-fetch-usd"}
CLEARABLE = ("fast_input", "fast_output", "long_context_threshold")  # `none` removes fast mode / the long-context tier


def multiplier(bp: int | None) -> str:
    return "–" if bp is None else f"x{bp / 10_000:g}"


def model_lines(model: dict[str, Any]) -> list[str]:
    """One model as `models list` shows it: prices per million tokens, markup, then its modifiers."""
    prices = "  ".join(f"{column.removesuffix('_price').replace('_', ' ')} {usd(model[column])}"
                       for column in PRICE_COLUMNS)
    head = f"{model['id']}  {'enabled' if model['enabled'] else 'disabled'}  {prices}  markup " \
           f"{multiplier(model['markup_bp'])}"
    threshold = model["long_context_threshold"]
    long_context = (f"long context above {threshold:,} input tokens: input {multiplier(model['long_context_input_bp'])}"
                    f" output {multiplier(model['long_context_output_bp'])}" if threshold else "no long-context tier")
    fast = (f"fast: input {multiplier(model['fast_input_bp'])} output {multiplier(model['fast_output_bp'])}"
            if model["fast_input_bp"] or model["fast_output_bp"] else "no fast mode")
    extras = (f"US-only {multiplier(model['us_geo_bp'])}  web search {usd(model['web_search_price_micro'])}/use  "
              f"web fetch {usd(model['web_fetch_price_micro'])}/use  batch {multiplier(model['batch_bp'])}")
    aliases = f"  aliases {', '.join(model['aliases'])}" if model["aliases"] else ""
    return [head + aliases, f"    {long_context}  {fast}  {extras}"]


def list_models(args: argparse.Namespace) -> None:
    async def action(ops: Operations) -> None:
        for model in await ops.models():
            print("\n".join(model_lines(model)))

    with_operations(action)


def modifier_value(text: str) -> float | None:
    """A number, or `none` to remove an optional modifier (checked by the operation)."""
    if text.strip().lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def in_flag_terms(message: str) -> str:
    """A refusal naming a modifier as the operation calls it (us_geo: ...), named by its flag instead."""
    for name, flag in MODIFIER_FLAGS.items():
        if message.startswith(name + ":") or message.startswith(name + " "):
            return "--" + flag + message[len(name):]
    return message


def set_model(args: argparse.Namespace) -> None:
    prices = {column: getattr(args, column) for column in PRICE_COLUMNS if getattr(args, column) is not None}
    modifiers = {name: getattr(args, name) for name in MODIFIERS if getattr(args, name) is not ...}
    if args.fast_both is not ...:
        modifiers.setdefault("fast_input", args.fast_both)
        modifiers.setdefault("fast_output", args.fast_both)
    enabled = None if args.enabled is None else args.enabled == "on"
    if not prices and not modifiers and args.markup is None and enabled is None:
        raise OperationError("nothing to change: give at least one flag (see `ccgate models set --help`)")

    async def action(ops: Operations) -> None:
        try:
            await ops.update_model(args.model, prices_usd=prices or None, markup=args.markup, enabled=enabled,
                                   modifiers=modifiers)
        except OperationError as error:
            raise OperationError(in_flag_terms(str(error))) from None
        for model in await ops.models():
            if model["id"] == args.model:
                print("\n".join(model_lines(model)))

    with_operations(action)


def register(commands: Any) -> None:
    models = group(commands, "models", "the model catalog: list prices, markup and price modifiers")
    command(models, "list", list_models, "every model with its prices and modifiers")
    parser = command(models, "set", set_model, "change a model's prices, markup, modifiers or availability; "
                     "what is not given stays")
    parser.add_argument("model", help="the model's id, as `models list` shows it")
    for column, flag in PRICE_FLAGS.items():
        parser.add_argument("--" + flag.replace("_", "-"), dest=column, type=dollars(allow_negative=False),
                            metavar="USD", help=f"{column.replace('_', ' ')} per million tokens")
    parser.add_argument("--markup", type=float, metavar="X", help="multiplier on list prices, e.g. 1.2")
    parser.add_argument("--enabled", choices=("on", "off"), help="offer the model or not")
    for name in MODIFIERS:
        clearable = " ('none' removes it)" if name in CLEARABLE else ""
        parser.add_argument("--" + MODIFIER_FLAGS[name], dest=name, type=modifier_value, default=...,
                            metavar="N", help=name.replace("_", " ") + clearable)
    parser.add_argument("--fast-x", dest="fast_both", type=modifier_value, default=..., metavar="N",
                        help="fast mode's multiplier on input and output alike, e.g. 6 ('none' removes fast mode)")
