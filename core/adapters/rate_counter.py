"""Counting requests against their limits: the `limits` library's fixed windows, every scope of
one request counted together.

On Redis that is one round trip: a Lua script, registered on the library's own storage beside
its scripts, reads every scope's counter, and adds the request to all of them only if none is
full (a refused request costs no scope anything), then answers each count with its window's
remaining time — the hit and the response headers at once. In process memory (embedded mode, and
the fallback for log-in forms while Redis is away) the library's MemoryStorage does the same
under a lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from limits import RateLimitItem
from limits.storage import MemoryStorage, RedisStorage

from core.adapters.redis_link import RedisLink

KEY_PREFIX = "platform-limits"

_COUNT_ALL = """
local cost = tonumber(ARGV[1])
local counts = {}
local allowed = 1
for i = 1, #KEYS do
  counts[i] = tonumber(redis.call('get', KEYS[i]) or '0')
  if cost > 0 and counts[i] + cost > tonumber(ARGV[2 * i]) then allowed = 0 end
end
local answer = {allowed}
for i = 1, #KEYS do
  if allowed == 1 and cost > 0 then
    counts[i] = redis.call('incrby', KEYS[i], cost)
    if counts[i] == cost then redis.call('expire', KEYS[i], ARGV[2 * i + 1]) end
  end
  answer[#answer + 1] = counts[i]
  answer[#answer + 1] = redis.call('pttl', KEYS[i])
end
return answer
"""


@dataclass(frozen=True)
class Scope:
    """One budget a request draws on: `name` says which kind (account, practice, address …),
    `key` whose (e.g. "account:<id>")."""

    name: str
    key: str
    limit: RateLimitItem

    @property
    def storage_key(self) -> str:
        return self.limit.key_for(self.key)


@dataclass(frozen=True)
class Window:
    """A scope's current window: how much of it is used and when it starts again."""

    scope: Scope
    used: int
    reset_at: float  # seconds since the epoch

    @property
    def limit(self) -> int:
        return self.scope.limit.amount

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


@dataclass(frozen=True)
class Tally:
    allowed: bool
    windows: tuple[Window, ...]

    def closest(self) -> Window | None:
        """The window closest to its limit (the one that refuses first); of equals, the one
        that waits longest."""
        if not self.windows:
            return None
        return min(self.windows, key=lambda w: (w.remaining, -w.reset_at))

    def refusing(self) -> list[Window]:
        """The windows that refused this request (full, with nothing left for one more)."""
        return [w for w in self.windows if w.remaining == 0 and not self.allowed]


class RateCounter(Protocol):
    def count(self, scopes: Sequence[Scope], *, cost: int = 1) -> Tally:
        """Add `cost` to every scope if none would go over its limit; `cost=0` only looks.
        Raises RedisUnavailable when its storage cannot answer."""
        ...


def _window_seconds(scope: Scope) -> int:
    return int(scope.limit.get_expiry())


class RedisRateCounter:
    def __init__(self, link: RedisLink) -> None:
        self.link = link
        self.storage = RedisStorage(link.url, connection_pool=link.client.connection_pool,
                                    key_prefix=KEY_PREFIX)
        self._count_all = link.client.register_script(_COUNT_ALL)

    def count(self, scopes: Sequence[Scope], *, cost: int = 1) -> Tally:
        if not scopes:
            return Tally(True, ())
        keys = [self.storage.prefixed_key(scope.storage_key) for scope in scopes]
        args: list[int] = [cost]
        for scope in scopes:
            args += [scope.limit.amount, _window_seconds(scope)]
        answer: list[Any] = self.link.run(
            lambda client: self._count_all(keys=keys, args=args, client=client))
        now = time.time()
        windows = []
        for index, scope in enumerate(scopes):
            used, ttl_ms = int(answer[1 + 2 * index]), int(answer[2 + 2 * index])
            seconds_left = ttl_ms / 1000 if ttl_ms > 0 else _window_seconds(scope)
            windows.append(Window(scope, used, now + seconds_left))
        return Tally(bool(answer[0]), tuple(windows))


class MemoryRateCounter:
    """Per process: the embedded mode's counter, and log-in forms' fallback during an outage."""

    def __init__(self) -> None:
        self.storage = MemoryStorage()
        self._lock = threading.Lock()

    def count(self, scopes: Sequence[Scope], *, cost: int = 1) -> Tally:
        with self._lock:
            used = [self.storage.get(scope.storage_key) for scope in scopes]
            allowed = cost == 0 or all(
                n + cost <= scope.limit.amount for n, scope in zip(used, scopes, strict=True))
            if allowed and cost > 0:
                used = [self.storage.incr(scope.storage_key, _window_seconds(scope), amount=cost)
                        for scope in scopes]
            now = time.time()
            windows = tuple(
                Window(scope, n, self.storage.get_expiry(scope.storage_key) if n
                       else now + _window_seconds(scope))
                for n, scope in zip(used, scopes, strict=True))
        return Tally(allowed, windows)
