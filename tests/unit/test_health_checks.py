"""Health probes against a dependency that never answers do not pile up stuck threads."""

from __future__ import annotations

import threading

from core.health import FAIL, PASS, UNHEALTHY, HealthChecks
from tests.support.processes import wait_until


def test_a_check_still_running_is_reported_failing_and_not_started_again() -> None:
    answer = threading.Event()
    started: list[int] = []

    def silent_database() -> str:
        started.append(1)
        answer.wait(30)
        return "postgresql"

    checks = HealthChecks()
    probe = {"database": silent_database}
    first_status, first = checks.run(probe, critical={"database"}, timeout=0.2)
    assert first_status == UNHEALTHY and first["database"].status == FAIL
    for _ in range(5):
        status, later = checks.run(probe, critical={"database"}, timeout=0.2)
        assert status == UNHEALTHY and "no answer yet" in later["database"].detail
    assert len(started) == 1

    answer.set()  # the database answers again: the next probe runs the check anew
    wait_until(lambda: checks.run(probe, critical={"database"}, timeout=1.0)[1]["database"]
               .status == PASS, 10, "the check to pass once the database answers")
    assert len(started) == 2


def test_other_checks_run_while_one_is_stuck() -> None:
    answer = threading.Event()
    checks = HealthChecks()
    probe = {"database": lambda: str(answer.wait(30)), "cache": lambda: "redis"}
    try:
        checks.run(probe, critical={"database"}, timeout=0.2)
        _, results = checks.run(probe, critical={"database"}, timeout=0.2)
        assert results["cache"].status == PASS
        assert list(results) == ["database", "cache"]
    finally:
        answer.set()
