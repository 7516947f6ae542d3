from __future__ import annotations

import pytest

from core.cache import MemoryCache


@pytest.fixture
def cache() -> MemoryCache:
    return MemoryCache()
