"""The metrics page's chart geometry: axes a person can read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from web.charts import time_chart

DAYS = [datetime(2026, 11, 1, tzinfo=UTC) + timedelta(days=n) for n in range(7)]


def _tick_labels(highest: float) -> list[str]:
    chart = time_chart([("Clients", DAYS, [0, 0, 0, 0, 0, 0, highest])])
    return [label for _y, label in chart.y_ticks]


def test_counts_get_whole_ticks_from_zero_to_a_round_top():
    assert _tick_labels(0) == ["0", "1"]
    assert _tick_labels(1) == ["0", "1"]
    assert _tick_labels(3) == ["0", "1", "2", "3"]
    assert _tick_labels(7) == ["0", "2", "4", "6", "8"]
    assert _tick_labels(1234) == ["0", "500", "1,000", "1,500"]


def test_the_top_tick_sits_on_the_plot_top_and_zero_on_the_baseline():
    chart = time_chart([("Clients", DAYS, [0, 1, 2, 3, 4, 5, 7])])
    ys = [y for y, _label in chart.y_ticks]
    assert ys[0] == chart.baseline
    assert min(ys) == 12.0  # TOP: the highest tick is the top of the plot

