"""Where a metrics rollup spends its time, statement by statement.

`python -m bench.rollup_statements [--rounds N]` runs the full rollup and the tick exactly as the
`metrics-rollup-full` and `metrics-rollup-tick` entries do (on `bench_metrics`, loaded on first
use), times every statement they send with SQLAlchemy's cursor events, and prints each run's total
and its slowest statements. The first full rollup of a process also pays for compiling them. For
the plans behind a figure, EXPLAIN (ANALYZE, BUFFERS) the statement it names.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import event

from bench import metrics

SHOWN = 8  # slowest statements printed per run


class StatementTimer:
    """(ms, the statement's first words) for every statement the engine runs while listening."""

    def __init__(self) -> None:
        self.timings: list[tuple[float, str]] = []
        self._started: dict[int, float] = {}

    def listen(self, engine: Any) -> None:
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self._started[id(conn)] = time.perf_counter()

    def _after(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        elapsed = (time.perf_counter() - self._started.pop(id(conn))) * 1000
        self.timings.append((elapsed, " ".join(statement.split())[:150]))

    def report(self, title: str, wall_ms: float) -> None:
        total = sum(ms for ms, _ in self.timings)
        print(f"{title}: {wall_ms:.1f} ms, of which {total:.1f} ms in "
              f"{len(self.timings)} statements")
        for ms, text in sorted(self.timings, reverse=True)[:SHOWN]:
            print(f"  {ms:8.1f}  {text}")
        self.timings.clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="runs of each (default 2)")
    rounds = parser.parse_args().rounds
    reference = metrics._reference(False)
    timer = StatementTimer()
    with metrics._database() as db:
        timer.listen(db.engine)

        def full() -> None:
            metrics._rollup(db, now=reference, since=reference.date())

        def tick() -> None:
            metrics._rollup(db, now=reference + metrics.TICK)

        for _ in range(rounds):
            metrics._forget_points()
            _timed(timer, "full rollup", full)
        for _ in range(rounds):
            metrics._forget_points()
            full()
            metrics._record_activity(reference)
            try:
                _timed(timer, "tick after 1,000 new events", tick)
            finally:
                metrics._remove_activity()


def _timed(timer: StatementTimer, title: str, run: Callable[[], None]) -> None:
    timer.timings.clear()
    started = time.perf_counter()
    run()
    timer.report(title, (time.perf_counter() - started) * 1000)


if __name__ == "__main__":
    main()
