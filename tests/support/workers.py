"""Run a process's actors in-process (StubBroker + dramatiq.Worker) and wait for them to finish."""

from __future__ import annotations

import time

from dramatiq import Worker
from flask import Flask

from assembly import worker_side_of
from workers.wiring import WorkerSide


class EmbeddedWorker:
    def __init__(self, side: WorkerSide | Flask, threads: int = 4) -> None:
        self.side = worker_side_of(side) if isinstance(side, Flask) else side
        self.broker = self.side.broker
        self.worker = Worker(self.broker, worker_threads=threads, worker_timeout=50)
        self.worker.start()
        self.side.runtime.broker_is_drained = True

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until every queue is empty and nothing is in flight, including the messages
        that handlers enqueue while running (a chain of events)."""
        deadline = time.monotonic() + timeout
        dispatcher = self.side.dispatcher
        while time.monotonic() < deadline:
            # Committed events reach the broker from the dispatcher's thread.
            dispatcher.flush(max(0.0, deadline - time.monotonic()))
            for name in list(self.broker.queues):
                if not name.endswith(".XQ"):
                    self.broker.join(name, timeout=int((deadline - time.monotonic()) * 1000),
                                     fail_fast=False)
            self.worker.join()
            published_all = dispatcher.flush(0)
            if published_all and all(q.unfinished_tasks == 0 for n, q in self.broker.queues.items()
                                     if not n.endswith(".XQ")):
                return
        raise TimeoutError("the in-process worker did not drain in time")

    def dead_letters(self) -> list[object]:
        return list(self.broker.dead_letters)

    def stop(self) -> None:
        self.side.runtime.broker_is_drained = False
        self.worker.stop()
