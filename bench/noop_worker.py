"""The baseline's worker: `dramatiq bench.noop_worker:boot --processes 1 --threads 8`.

A no-op actor on a plain Dramatiq RedisBroker (default middleware, none of the platform's), on
the same Redis URL as the platform. It counts what it has done in Redis, so the bench process can
see when the last message is through.
"""

from __future__ import annotations

import os
from typing import cast

import dramatiq
from dramatiq.brokers.redis import RedisBroker

QUEUE = "bench-noop"
DONE_KEY = "bench:noop:done"


def redis_broker(url: str) -> RedisBroker:
    return RedisBroker(url=url)  # type: ignore[no-untyped-call]


def done_count(broker: RedisBroker) -> int:
    """How many no-op messages the worker has processed so far."""
    return int(cast(bytes | None, broker.client.get(DONE_KEY)) or 0)


def noop_actor(broker: RedisBroker) -> dramatiq.Actor[[], None]:
    """The actor, bound to `broker`: the worker's, or the bench process's (to send to it)."""

    def noop() -> None:
        broker.client.incr(DONE_KEY)

    declare = dramatiq.actor(broker=broker, actor_name="noop", queue_name=QUEUE, max_retries=0)
    return declare(noop)


def boot() -> None:
    """Called by the dramatiq launcher in each worker process: install the broker and the actor."""
    broker = redis_broker(os.environ["REDIS_URL"])
    dramatiq.set_broker(broker)
    noop_actor(broker)
