"""The cache adapters' counters, on process memory and on a real Redis: counts within a window."""

from __future__ import annotations

import time

import pytest

from core.adapters.cache import MemoryCache, RedisCache

pytestmark = pytest.mark.integration


@pytest.fixture(params=["memory", "redis"])
def cache(request):
    if request.param == "memory":
        return MemoryCache()
    return RedisCache(request.getfixturevalue("redis_url"))


def test_a_counter_counts_and_reads_back(cache):
    assert [cache.incr("hits", 60) for _ in range(3)] == [1, 2, 3]
    assert cache.get("hits") == b"3"


def test_a_counter_starts_again_once_its_window_has_passed(cache):
    assert cache.incr("short", 1) == 1
    assert cache.incr("short", 1) == 2
    deadline = time.monotonic() + 5
    while cache.get("short") is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cache.incr("short", 1) == 1
