"""Embedded mode: the same actors, drained from the in-process StubBroker by worker threads."""

from __future__ import annotations

import atexit
import logging

from dramatiq import Worker

from workers.wiring import WorkerSide

log = logging.getLogger(__name__)


def start_embedded_worker(side: WorkerSide, threads: int) -> Worker:
    worker = Worker(side.broker, worker_threads=threads, worker_timeout=100)
    worker.start()
    side.runtime.broker_is_drained = True
    atexit.register(stop_embedded_worker, side, worker)
    log.info("in-process worker started with %d thread(s)", threads)
    return worker


def stop_embedded_worker(side: WorkerSide, worker: Worker) -> None:
    side.runtime.broker_is_drained = False
    worker.stop()
