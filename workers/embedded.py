"""Embedded mode: the same actors, drained from the in-process StubBroker by worker threads."""

from __future__ import annotations

import atexit
import logging

import dramatiq
from dramatiq import Worker

log = logging.getLogger(__name__)
_running: list[Worker] = []


def is_running() -> bool:
    """True when this process drains its in-process broker (so a publish here gets run)."""
    return bool(_running)


def start_embedded_worker(threads: int) -> Worker:
    worker = Worker(dramatiq.get_broker(), worker_threads=threads, worker_timeout=100)
    worker.start()
    _running.append(worker)
    atexit.register(stop_embedded_worker, worker)
    log.info("in-process worker started with %d thread(s)", threads)
    return worker


def stop_embedded_worker(worker: Worker) -> None:
    if worker in _running:
        _running.remove(worker)
        worker.stop()
