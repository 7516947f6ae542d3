"""Chart geometry for the admin's metrics page: numbers in, coordinates out.

The SVG itself is written by our own templates (templates/metrics/_charts.html) with presentation
attributes only: no script, no style element, nothing for the nonce CSP to block, and every chart
keeps a table of the same numbers beside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

# Distinguishable, and each at least 4.5:1 against white.
COLOURS = ("#1f5fa8", "#a8431e", "#2e6b30", "#6a3d9a", "#7a5a00")
WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 12, 28


@dataclass(frozen=True)
class Line:
    label: str
    colour: str
    points: str  # "x,y x,y …" for <polyline>
    values: tuple[float, ...]


@dataclass(frozen=True)
class TimeChart:
    lines: tuple[Line, ...]
    days: tuple[datetime, ...]
    y_ticks: tuple[tuple[float, str], ...]  # (y, label)
    x_labels: tuple[tuple[float, str], ...]  # (x, label)
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right_edge: int = WIDTH - RIGHT
    baseline: int = HEIGHT - BOTTOM

    @property
    def empty(self) -> bool:
        return not self.lines or all(v == 0 for line in self.lines for v in line.values)


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    y: float
    length: float
    colour: str


@dataclass(frozen=True)
class BarChart:
    bars: tuple[Bar, ...]
    width: int = WIDTH
    label_width: int = 170
    bar_height: int = 22
    gap: int = 10

    @property
    def height(self) -> int:
        return max(1, len(self.bars)) * (self.bar_height + self.gap) + self.gap


def _tick_step(value: float) -> int:
    """A whole, round step (1, 2 or 5 times a power of ten) giving at most four steps up to
    `value`: the charts count people, and a third of a person is no tick."""
    wanted = max(value / 4, 1.0)
    magnitude = 10 ** math.floor(math.log10(wanted))
    for step in (1, 2, 5, 10):
        if step * magnitude >= wanted:
            return int(step * magnitude)
    return int(10 * magnitude)


def time_chart(lines: Sequence[tuple[str, Sequence[datetime], Sequence[float]]]) -> TimeChart:
    """Lines over the same days: [(label, days, values)]."""
    days: tuple[datetime, ...] = tuple(lines[0][1]) if lines else ()
    highest = max((v for _, _, values in lines for v in values), default=0.0)
    step_value = _tick_step(highest)
    top = float(max(1, math.ceil(highest / step_value)) * step_value)
    plot_width, plot_height = WIDTH - RIGHT - LEFT, HEIGHT - BOTTOM - TOP
    step = plot_width / max(1, len(days) - 1)

    def y_of(value: float) -> float:
        return round(HEIGHT - BOTTOM - value / top * plot_height, 1)

    drawn = tuple(Line(label, COLOURS[n % len(COLOURS)],
                       " ".join(f"{round(LEFT + i * step, 1)},{y_of(v)}"
                                for i, v in enumerate(values)), tuple(values))
                  for n, (label, _, values) in enumerate(lines))
    ticks = tuple((y_of(value), f"{value:,}") for value in range(0, int(top) + 1, step_value))
    every = max(1, len(days) // 6)
    x_labels = tuple((round(LEFT + i * step, 1), day.strftime("%d %b"))
                     for i, day in enumerate(days) if i % every == 0 or i == len(days) - 1)
    return TimeChart(drawn, days, ticks, x_labels)


def bar_chart(items: Sequence[tuple[str, float]]) -> BarChart:
    chart = BarChart(())
    top = max((value for _, value in items), default=0.0) or 1.0
    room = chart.width - chart.label_width - 60
    bars = tuple(Bar(label, value, chart.gap + n * (chart.bar_height + chart.gap),
                     round(value / top * room, 1), COLOURS[n % len(COLOURS)])
                 for n, (label, value) in enumerate(items))
    return BarChart(bars)
