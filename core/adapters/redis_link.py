"""The process's one Redis client, shared by the cache and the rate counter.

After a command fails, no other is sent for `RETRY_SECONDS`: a Redis that is down (or silent,
which would cost every request its socket timeout) costs requests nothing but the first failure.
Then the next command tries again and, once Redis answers, everything resumes by itself. The
outage is logged once when it starts and once when it ends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_SECONDS = 1.0
SOCKET_TIMEOUT_SECONDS = 0.5


class RedisUnavailable(Exception):
    """Redis did not answer (or failed recently and is not tried again yet)."""


class RedisLink:
    def __init__(self, url: str, *, retry_seconds: float = RETRY_SECONDS) -> None:
        import redis

        self.url = url
        self.client: Any = redis.Redis.from_url(
            url, socket_timeout=SOCKET_TIMEOUT_SECONDS,
            socket_connect_timeout=SOCKET_TIMEOUT_SECONDS, health_check_interval=30)
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self.retry_seconds = retry_seconds
        self._retry_at = 0.0
        self._down = False
        self._lock = threading.Lock()

    @property
    def down(self) -> bool:
        return self._down

    def run(self, command: Callable[[Any], T], *, probe: bool = False) -> T:
        """`command(client)`, or RedisUnavailable. `probe` (health checks) tries even while
        Redis is resting after a failure."""
        if self._down and not probe and time.monotonic() < self._retry_at:
            raise RedisUnavailable("resting after a failure")
        try:
            result = command(self.client)
        except self._errors as error:
            self._failed(error)
            raise RedisUnavailable(f"{type(error).__name__}: {error}") from error
        if self._down:
            self._answered()
        return result

    def _failed(self, error: BaseException) -> None:
        with self._lock:
            started, self._down = not self._down, True
            self._retry_at = time.monotonic() + self.retry_seconds
        if started:
            first_line = str(error).splitlines()[0][:200] if str(error) else ""
            log.warning("redis unavailable (%s: %s); the cache reads the database meanwhile",
                        type(error).__name__, first_line)

    def _answered(self) -> None:
        with self._lock:
            ended, self._down = self._down, False
        if ended:
            log.warning("redis answers again")
