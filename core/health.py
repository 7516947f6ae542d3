"""Health checks run side by side, each bounded by a timeout, folded into one status.

A check is a function that returns a short detail string, raises on failure, or raises
`Warn` when things work but need attention. A failing *critical* check makes the whole
platform `unhealthy` (HTTP 503); anything else that fails or warns makes it `degraded`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

PASS, WARN, FAIL = "pass", "warn", "fail"
HEALTHY, DEGRADED, UNHEALTHY = "healthy", "degraded", "unhealthy"

# Shared, so a burst of probes cannot spawn unbounded threads; a hung check holds one thread
# only until its own socket timeout (and HealthChecks starts no second one meanwhile).
_pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="health")


class Warn(Exception):
    """The dependency works but something needs attention (backlog, no workers …)."""


@dataclass(frozen=True)
class CheckResult:
    status: str
    latency_ms: float
    detail: str

    def as_dict(self) -> dict[str, object]:
        return {"status": self.status, "latency_ms": self.latency_ms, "detail": self.detail}


def _timed(check: Callable[[], str]) -> CheckResult:
    started = time.perf_counter()
    try:
        detail, status = check(), PASS
    except Warn as warning:
        detail, status = str(warning), WARN
    except Exception as error:  # a failing dependency is a result, not an exception
        detail, status = f"{type(error).__name__}: {error}".splitlines()[0][:300], FAIL
    return CheckResult(status, round((time.perf_counter() - started) * 1000, 1), detail)


class HealthChecks:
    """Runs named checks side by side, each bounded by the timeout, for one app.

    A check that timed out keeps its thread until its dependency answers or its own bound ends
    it. While it runs, later calls report that check as failing instead of starting it again:
    probes against a silent dependency cannot pile up stuck threads."""

    def __init__(self) -> None:
        self._running: dict[str, tuple[float, Future[CheckResult]]] = {}
        self._lock = threading.Lock()

    def run(self, checks: Mapping[str, Callable[[], str]], *, critical: set[str],
            timeout: float) -> tuple[str, dict[str, CheckResult]]:
        started = time.perf_counter()
        results: dict[str, CheckResult] = {}
        futures: dict[str, Future[CheckResult]] = {}
        for name, check in checks.items():
            claimed = self._start_unless_running(name, check, started)
            if isinstance(claimed, CheckResult):
                results[name] = claimed
            else:
                futures[name] = claimed
        for name, future in futures.items():
            remaining = max(0.0, timeout - (time.perf_counter() - started))
            try:
                results[name] = future.result(timeout=remaining)
            except FutureTimeout:
                results[name] = CheckResult(FAIL, round(timeout * 1000, 1),
                                            f"no answer within {timeout:g}s")
        ordered = {name: results[name] for name in checks}
        return overall(ordered, critical), ordered

    def _start_unless_running(self, name: str, check: Callable[[], str],
                              now: float) -> Future[CheckResult] | CheckResult:
        with self._lock:
            running = self._running.get(name)
            if running is not None and not running[1].done():
                age = now - running[0]
                return CheckResult(FAIL, round(age * 1000, 1),
                                   f"no answer yet to the check started {age:.1f}s ago")
            future = _pool.submit(_timed, check)
            self._running[name] = (now, future)
            return future


def overall(results: Mapping[str, CheckResult], critical: set[str]) -> str:
    if any(r.status == FAIL for name, r in results.items() if name in critical):
        return UNHEALTHY
    if any(r.status != PASS for r in results.values()):
        return DEGRADED
    return HEALTHY
