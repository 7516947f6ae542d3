"""The platform's clock: always timezone-aware UTC. Tests move time by replacing `now`."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)
