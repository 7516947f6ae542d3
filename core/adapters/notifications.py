"""Live delivery of 'something new for account X' to whichever web process holds its stream.

Redis pub/sub across processes in production; an in-process broadcaster in embedded mode. Only
a wake-up signal travels here: the stream then reads the notification rows, so nothing is lost
when a tab was closed at the moment of publishing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

log = logging.getLogger(__name__)


class Subscription(Protocol):
    def wait(self, timeout: float) -> bool:
        """Block up to `timeout` seconds; True if something was published meanwhile."""
        ...


class NotificationBus(Protocol):
    def publish(self, account_id: str) -> None: ...
    def subscribe(self, account_id: str) -> AbstractContextManager[Subscription]: ...


class _LocalSubscription:
    def __init__(self) -> None:
        self._event = threading.Event()

    def wake(self) -> None:
        self._event.set()

    def wait(self, timeout: float) -> bool:
        woke = self._event.wait(timeout)
        self._event.clear()
        return woke


class LocalBus:
    def __init__(self) -> None:
        self._subscribers: dict[str, set[_LocalSubscription]] = {}
        self._lock = threading.Lock()

    def publish(self, account_id: str) -> None:
        with self._lock:
            subscribers = list(self._subscribers.get(account_id, ()))
        for subscription in subscribers:
            subscription.wake()

    @contextmanager
    def subscribe(self, account_id: str) -> Iterator[Subscription]:
        subscription = _LocalSubscription()
        with self._lock:
            self._subscribers.setdefault(account_id, set()).add(subscription)
        try:
            yield subscription
        finally:
            with self._lock:
                self._subscribers.get(account_id, set()).discard(subscription)


class _RedisSubscription:
    def __init__(self, pubsub: object) -> None:
        self._pubsub = pubsub

    def wait(self, timeout: float) -> bool:
        message = self._pubsub.get_message(  # type: ignore[attr-defined]
            ignore_subscribe_messages=True, timeout=timeout
        )
        return message is not None


class RedisBus:
    CHANNEL = "platform:notify:"

    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_connect_timeout=1.0,
                                           health_check_interval=30)

    def publish(self, account_id: str) -> None:
        try:
            self.client.publish(self.CHANNEL + account_id, b"1")
        except Exception as error:
            # The row is stored; the open tab sees it on its next poll of the stream.
            log.warning("notification push failed (%s)", type(error).__name__)

    @contextmanager
    def subscribe(self, account_id: str) -> Iterator[Subscription]:
        pubsub = self.client.pubsub()  # type: ignore[no-untyped-call]
        pubsub.subscribe(self.CHANNEL + account_id)
        try:
            yield _RedisSubscription(pubsub)
        finally:
            pubsub.close()


def build_bus(redis_url: str | None) -> NotificationBus:
    return RedisBus(redis_url) if redis_url else LocalBus()
