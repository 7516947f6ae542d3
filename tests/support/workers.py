"""Run the app's actors in-process (StubBroker + dramatiq.Worker) and wait for them to finish."""

from __future__ import annotations

import time

from dramatiq import Worker
from dramatiq.brokers.stub import StubBroker

from workers import embedded
from workers.runtime import runtime


class EmbeddedWorker:
    def __init__(self, broker: StubBroker, threads: int = 4) -> None:
        self.broker = broker
        self.worker = Worker(broker, worker_threads=threads, worker_timeout=50)
        self.worker.start()
        embedded._running.append(self.worker)

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until every queue is empty and nothing is in flight, including the messages
        that handlers enqueue while running (a chain of events)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # Committed events reach the broker from the dispatcher's thread.
            runtime().dispatcher.flush(max(0.0, deadline - time.monotonic()))
            for name in list(self.broker.queues):
                if not name.endswith(".XQ"):
                    self.broker.join(name, timeout=int((deadline - time.monotonic()) * 1000),
                                     fail_fast=False)
            self.worker.join()
            published_all = runtime().dispatcher.flush(0)
            if published_all and all(q.unfinished_tasks == 0 for n, q in self.broker.queues.items()
                                     if not n.endswith(".XQ")):
                return
        raise TimeoutError("the in-process worker did not drain in time")

    def dead_letters(self) -> list[object]:
        return list(self.broker.dead_letters)

    def stop(self) -> None:
        if self.worker in embedded._running:
            embedded._running.remove(self.worker)
        self.worker.stop()
