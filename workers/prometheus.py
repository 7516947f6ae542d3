"""Dramatiq's Prometheus middleware on WORKER_METRICS_PORT.

Its exposition server runs in a process the `dramatiq` command forks from its main process,
which never imports workers.boot: the server must find its port itself, from the environment
(WORKER_METRICS_PORT), when that process starts.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from dramatiq.middleware import prometheus


class WorkerPrometheus(prometheus.Prometheus):
    """Dramatiq's counters (messages, errors, retries, durations per actor), served on our port."""

    @property
    def forks(self) -> list[Callable[[], Any]]:
        return [serve]


def serve() -> Any:
    """The fork process: Dramatiq's exposition server on WORKER_METRICS_PORT."""
    prometheus.HTTP_PORT = int(os.environ["WORKER_METRICS_PORT"])
    return prometheus._run_exposition_server()  # type: ignore[no-untyped-call]
