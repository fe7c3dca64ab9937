"""Bar charts as inline SVG, drawn on the server: no script, no CDN, readable without colour."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 8, 28, 28
GRID_LINES = 4
MAX_BAR_WIDTH = 48
MAX_X_LABELS = 12


@dataclass(frozen=True)
class Series:
    """One stacked layer of bars: a name for the legend and one value per label."""

    name: str
    values: Sequence[float]


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is at least `value` (1 for nothing)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= value)


def _num(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def bar_chart(title: str, labels: Sequence[str], series: Sequence[Series],
              describe: Callable[[float], str] = _num) -> Markup:
    """Stacked bars, one per label, on a scale up to a round number, with a legend when there are
    several series and a tooltip on every segment; `describe` formats values for people."""
    totals = [sum(layer.values[i] for layer in series) for i in range(len(labels))]
    top = GRID_LINES * nice_ceiling(max(totals, default=0) / GRID_LINES)  # every grid line a round number
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_width / max(len(labels), 1)
    bar = min(slot * 0.7, MAX_BAR_WIDTH)
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">',
             f"<title>{escape(title)}</title>", '<g class="grid">']
    for step in range(GRID_LINES + 1):
        y = TOP + plot_height * (1 - step / GRID_LINES)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{_num(y)}" y2="{_num(y)}"/>'
                     f'<text x="{LEFT - 6}" y="{_num(y + 4)}" text-anchor="end">'
                     f"{escape(describe(top * step / GRID_LINES))}</text>")
    parts.append('</g><g class="bars">')
    for index, label in enumerate(labels):
        base: float = TOP + plot_height
        for layer_index, layer in enumerate(series):
            value = layer.values[index]
            if value <= 0:
                continue
            height = plot_height * value / top
            base -= height
            parts.append(f'<rect class="s{layer_index}" x="{_num(LEFT + index * slot + (slot - bar) / 2)}" '
                         f'y="{_num(base)}" width="{_num(bar)}" height="{_num(height)}">'
                         f"<title>{escape(label)} · {escape(layer.name)}: {escape(describe(value))}</title></rect>")
    parts.append('</g><g class="labels">')
    every = math.ceil(len(labels) / MAX_X_LABELS) or 1
    for index in range(0, len(labels), every):
        parts.append(f'<text x="{_num(LEFT + (index + 0.5) * slot)}" y="{HEIGHT - 8}" text-anchor="middle">'
                     f"{escape(labels[index])}</text>")
    parts.append("</g>")
    if len(series) > 1:
        parts.append('<g class="legend">')
        for layer_index, layer in enumerate(series):
            x = LEFT + layer_index * 150
            parts.append(f'<rect class="s{layer_index}" x="{x}" y="6" width="10" height="10"/>'
                         f'<text x="{x + 14}" y="15">{escape(layer.name)}</text>')
        parts.append("</g>")
    parts.append("</svg>")
    return Markup("".join(parts))
