"""A small cache and liveness store: Redis in production, process memory in embedded mode.

Both fail soft: a cache that cannot answer is a miss, never an error page.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

log = logging.getLogger(__name__)


class Cache(Protocol):
    def get(self, key: str) -> bytes | None: ...
    def set(self, key: str, value: bytes, ttl_seconds: int) -> None: ...
    def delete(self, *keys: str) -> None: ...
    def incr(self, key: str, ttl_seconds: int) -> int | None: ...
    def ping(self) -> None: ...
    def beat(self, group: str, member: str, ttl_seconds: int) -> None: ...
    def alive(self, group: str) -> list[str]: ...


class MemoryCache:
    def __init__(self) -> None:
        self._values: dict[str, tuple[float, bytes]] = {}
        self._beats: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            item = self._values.get(key)
            if item is None:
                return None
            expires, value = item
            if expires < time.monotonic():
                del self._values[key]
                return None
            return value

    def set(self, key: str, value: bytes, ttl_seconds: int) -> None:
        with self._lock:
            if len(self._values) > 50_000:
                self._evict_expired()
            self._values[key] = (time.monotonic() + ttl_seconds, value)

    def _evict_expired(self) -> None:
        now = time.monotonic()
        for key in [k for k, (expires, _) in self._values.items() if expires < now]:
            del self._values[key]

    def delete(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._values.pop(key, None)

    def incr(self, key: str, ttl_seconds: int) -> int | None:
        """Add one to a counter that expires `ttl_seconds` after its first count."""
        with self._lock:
            now = time.monotonic()
            expires, value = self._values.get(key, (0.0, b""))
            if expires < now:
                expires, value = now + ttl_seconds, b"0"
            count = int(value) + 1
            self._values[key] = (expires, str(count).encode())
            return count

    def ping(self) -> None:
        return None

    def beat(self, group: str, member: str, ttl_seconds: int) -> None:
        with self._lock:
            self._beats.setdefault(group, {})[member] = time.monotonic() + ttl_seconds

    def alive(self, group: str) -> list[str]:
        now = time.monotonic()
        with self._lock:
            members = self._beats.get(group, {})
            return sorted(m for m, expires in members.items() if expires >= now)


class RedisCache:
    def __init__(self, url: str, *, prefix: str = "platform:") -> None:
        import redis

        self.client = redis.Redis.from_url(
            url, socket_timeout=1.0, socket_connect_timeout=1.0, health_check_interval=30
        )
        self.prefix = prefix

    def get(self, key: str) -> bytes | None:
        try:
            value = self.client.get(self.prefix + key)
        except Exception as error:
            log.warning("cache get failed (%s); treating as a miss", type(error).__name__)
            return None
        return value if isinstance(value, bytes) else None

    def set(self, key: str, value: bytes, ttl_seconds: int) -> None:
        try:
            self.client.set(self.prefix + key, value, ex=ttl_seconds)
        except Exception as error:
            log.warning("cache set failed (%s)", type(error).__name__)

    def delete(self, *keys: str) -> None:
        if not keys:
            return
        try:
            self.client.delete(*(self.prefix + k for k in keys))
        except Exception as error:
            log.warning("cache delete failed (%s)", type(error).__name__)

    def incr(self, key: str, ttl_seconds: int) -> int | None:
        """Add one to a counter that expires `ttl_seconds` after its first count; None when
        Redis cannot answer."""
        try:
            pipe = self.client.pipeline()
            pipe.incr(self.prefix + key)
            pipe.expire(self.prefix + key, ttl_seconds, nx=True)
            count, _ = pipe.execute()
        except Exception as error:
            log.warning("cache incr failed (%s)", type(error).__name__)
            return None
        return int(count)

    def ping(self) -> None:
        self.client.ping()

    def beat(self, group: str, member: str, ttl_seconds: int) -> None:
        # A sorted set scored by expiry: one key per group, members expire individually.
        key = f"{self.prefix}beats:{group}"
        now = time.time()
        pipe = self.client.pipeline()
        pipe.zadd(key, {member: now + ttl_seconds})
        pipe.zremrangebyscore(key, "-inf", now)
        pipe.expire(key, ttl_seconds * 4)
        pipe.execute()

    def alive(self, group: str) -> list[str]:
        members: list[bytes] = self.client.zrangebyscore(  # type: ignore[assignment]
            f"{self.prefix}beats:{group}", time.time(), "+inf"
        )
        return sorted(m.decode() for m in members)


def build_cache(redis_url: str | None) -> Cache:
    return RedisCache(redis_url) if redis_url else MemoryCache()
