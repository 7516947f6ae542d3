"""A small cache and liveness store: Redis in production, process memory in embedded mode.

Both fail soft: a cache that cannot answer is a miss, never an error page. Named regions with
their TTLs, leases and invalidation are built on top of this (core.caching).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

from core.adapters.redis_link import RedisLink, RedisUnavailable

log = logging.getLogger(__name__)

# Store `value` only while the lease `KEYS[2]` is still ours (`ARGV[2]`), then give it back: an
# invalidation meanwhile deleted the lease, and a value read before it must not be kept.
_PUT_UNDER_LEASE = """
if redis.call('get', KEYS[2]) == ARGV[2] then
  redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[3])
  redis.call('del', KEYS[2])
  return 1
end
return 0
"""

_RELEASE_LEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class Cache(Protocol):
    def get(self, key: str) -> bytes | None: ...
    def get_many(self, keys: Sequence[str]) -> list[bytes | None] | None:
        """The values in order, or None when the cache cannot answer."""
        ...
    def set(self, key: str, value: bytes, ttl_seconds: int) -> None: ...
    def add(self, key: str, value: bytes, ttl_seconds: int) -> bool | None:
        """Set only if absent: True if set, False if present, None if the cache cannot answer."""
        ...
    def put_under_lease(self, key: str, value: bytes, ttl_seconds: int, lease: str,
                        token: bytes) -> bool: ...
    def release_lease(self, lease: str, token: bytes) -> None:
        """Give a lease back unused (its holder failed), if it is still this token's."""
        ...
    def delete(self, *keys: str) -> bool:
        """False when the cache could not answer (the keys may still be there)."""
        ...
    def delete_prefix(self, prefix: str) -> bool: ...
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

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return [self.get(key) for key in keys]

    def add(self, key: str, value: bytes, ttl_seconds: int) -> bool:
        with self._lock:
            item = self._values.get(key)
            if item is not None and item[0] >= time.monotonic():
                return False
            self._values[key] = (time.monotonic() + ttl_seconds, value)
            return True

    def put_under_lease(self, key: str, value: bytes, ttl_seconds: int, lease: str,
                        token: bytes) -> bool:
        with self._lock:
            held = self._values.get(lease)
            if held is None or held[1] != token or held[0] < time.monotonic():
                return False
            self._values[key] = (time.monotonic() + ttl_seconds, value)
            del self._values[lease]
            return True

    def release_lease(self, lease: str, token: bytes) -> None:
        with self._lock:
            held = self._values.get(lease)
            if held is not None and held[1] == token:
                del self._values[lease]

    def delete(self, *keys: str) -> bool:
        with self._lock:
            for key in keys:
                self._values.pop(key, None)
        return True

    def delete_prefix(self, prefix: str) -> bool:
        with self._lock:
            for key in [k for k in self._values if k.startswith(prefix)]:
                del self._values[key]
        return True

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
    """The cache on the process's Redis link: while Redis is away every read is a miss and every
    write is skipped, at no cost (see RedisLink); the link logs the outage once."""

    def __init__(self, url: str | None = None, *, link: RedisLink | None = None,
                 prefix: str = "platform:") -> None:
        if link is None:
            if url is None:
                raise ValueError("RedisCache needs a URL or a link")
            link = RedisLink(url)
        self.link = link
        self.client: Any = link.client
        self.prefix = prefix
        self._put_under_lease = self.client.register_script(_PUT_UNDER_LEASE)
        self._release_lease = self.client.register_script(_RELEASE_LEASE)

    def get(self, key: str) -> bytes | None:
        try:
            value = self.link.run(lambda client: client.get(self.prefix + key))
        except RedisUnavailable:
            return None
        return value if isinstance(value, bytes) else None

    def get_many(self, keys: Sequence[str]) -> list[bytes | None] | None:
        if not keys:
            return []
        try:
            values = self.link.run(lambda client: client.mget([self.prefix + k for k in keys]))
        except RedisUnavailable:
            return None
        return [v if isinstance(v, bytes) else None for v in values]

    def set(self, key: str, value: bytes, ttl_seconds: int) -> None:
        with contextlib.suppress(RedisUnavailable):
            self.link.run(lambda client: client.set(self.prefix + key, value, ex=ttl_seconds))

    def add(self, key: str, value: bytes, ttl_seconds: int) -> bool | None:
        try:
            return bool(self.link.run(lambda client: client.set(
                self.prefix + key, value, ex=ttl_seconds, nx=True)))
        except RedisUnavailable:
            return None

    def put_under_lease(self, key: str, value: bytes, ttl_seconds: int, lease: str,
                        token: bytes) -> bool:
        try:
            return bool(self.link.run(lambda client: self._put_under_lease(
                keys=[self.prefix + key, self.prefix + lease],
                args=[value, token, ttl_seconds], client=client)))
        except RedisUnavailable:
            return False

    def release_lease(self, lease: str, token: bytes) -> None:
        with contextlib.suppress(RedisUnavailable):
            self.link.run(lambda client: self._release_lease(
                keys=[self.prefix + lease], args=[token], client=client))

    def delete(self, *keys: str) -> bool:
        if not keys:
            return True
        try:
            self.link.run(lambda client: client.delete(*(self.prefix + k for k in keys)))
        except RedisUnavailable:
            return False
        return True

    def delete_prefix(self, prefix: str) -> bool:
        def scan_and_delete(client: Any) -> None:
            batch: list[bytes] = []
            for key in client.scan_iter(match=f"{self.prefix}{prefix}*", count=500):
                batch.append(key)
                if len(batch) >= 500:
                    client.delete(*batch)
                    batch = []
            if batch:
                client.delete(*batch)

        try:
            self.link.run(scan_and_delete)
        except RedisUnavailable:
            return False
        return True

    def incr(self, key: str, ttl_seconds: int) -> int | None:
        """Add one to a counter that expires `ttl_seconds` after its first count; None when
        Redis cannot answer."""
        def count(client: Any) -> int:
            pipe = client.pipeline()
            pipe.incr(self.prefix + key)
            pipe.expire(self.prefix + key, ttl_seconds, nx=True)
            counted, _ = pipe.execute()
            return int(counted)

        try:
            return self.link.run(count)
        except RedisUnavailable:
            return None

    def ping(self) -> None:
        self.link.run(lambda client: client.ping(), probe=True)

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
        members: list[bytes] = self.client.zrangebyscore(
            f"{self.prefix}beats:{group}", time.time(), "+inf"
        )
        return sorted(m.decode() for m in members)


def build_cache(redis_url: str | None, *, link: RedisLink | None = None) -> Cache:
    if link is not None:
        return RedisCache(link=link)
    return RedisCache(redis_url) if redis_url else MemoryCache()
