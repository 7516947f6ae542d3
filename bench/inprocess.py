"""The platform inside the bench process: its Flask app and its database, for set-up and for what
is counted rather than timed (SQL statements of a request), next to the servers under test.

The platform's modules are imported only when an entry needs them, so `--list` and the other
HTTP entries do not depend on them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from bench.measure import Context

if TYPE_CHECKING:
    from flask import Flask

    from core.db import Database

# The platform's environment as a hashable key: one app per run (it is what the cache is for).
EnvKey = frozenset[tuple[str, str]]


def env_key(ctx: Context) -> EnvKey:
    return frozenset(ctx.env.items())


@functools.cache
def app(env: EnvKey) -> Flask:
    """Built once per run and shared by the entries, as the web process's composition root
    builds it."""
    from assembly import web_process
    from core.config import Settings

    return web_process(Settings.from_env(dict(env)))


@contextmanager
def database(env: EnvKey) -> Iterator[Database]:
    """The platform's own `Database` on the run's database, disposed of afterwards."""
    from core.config import Settings
    from core.db import Database

    db = Database(Settings.from_env(dict(env)).database_url)
    try:
        yield db
    finally:
        db.dispose()
