"""Checks of the parts the web tier cannot see from a page: the session store and signing key,
the file store, the scheduler's heartbeat and the schema's revision.

Each is a plain function over the services it probes, returning a short detail or raising (see
core.health); web/health.py runs them side by side under HEALTH_TIMEOUT_MS.
"""

from __future__ import annotations

import json
import secrets
import time
from functools import cache
from pathlib import Path

import sqlalchemy as sa

from core.adapters.cache import Cache
from core.adapters.files import FileStore

PROBE_KEY = "health/probe"
SCHEDULER_HEARTBEAT_KEY = "scheduler:heartbeat"
MIGRATIONS = Path(__file__).resolve().parent.parent.parent / "migrations"


def auth(engine: sa.Engine, cache: Cache, secret_key: str) -> str:
    """The signing key is loaded; the session store answers a write and a read.

    The write touches no row (a probe id no session can have) and is rolled back: it proves the
    table takes writes (not a read-only replica, no lock held on it) without leaving a trace."""
    if len(secret_key) < 16:  # the cookie signer and the token digests use it
        raise RuntimeError("no signing key loaded (SECRET_KEY is missing or too short)")
    probe = secrets.token_hex(16)
    with engine.connect() as connection, connection.begin() as transaction:
        connection.execute(sa.text("UPDATE auth_sessions SET last_seen_at = last_seen_at "
                                   "WHERE id_hash = :probe"), {"probe": f"health:{probe}"})
        connection.execute(sa.text("SELECT id_hash FROM auth_sessions WHERE id_hash = :probe"),
                           {"probe": f"health:{probe}"}).all()
        transaction.rollback()
    key = f"health:auth:{probe}"
    cache.set(key, probe.encode(), 30)
    cached = cache.get(key)
    cache.delete(key)
    if cached != probe.encode():
        return "sessions in the database (the cache in front of them is not answering)"
    return "signing key loaded; session store and its cache answer"


def storage(files: FileStore) -> str:
    """Write, read back and delete a probe object where exports land."""
    token = secrets.token_bytes(16)
    with files.writer(PROBE_KEY) as out:
        out.write(token)
    read_back = b"".join(files.read(PROBE_KEY))
    files.delete(PROBE_KEY)
    if read_back != token:
        raise RuntimeError(f"{files.describe()}: the probe read back differs from what was written")
    return files.describe()


def beat_scheduler(cache: Cache, leader: str, every_seconds: float) -> None:
    """The scheduler leader says it is alive, and how often it will say so."""
    value = json.dumps({"at": time.time(), "every": every_seconds, "leader": leader})
    cache.set(SCHEDULER_HEARTBEAT_KEY, value.encode(), int(every_seconds * 10) + 1)


def scheduler(cache: Cache) -> str:
    """The leader's heartbeat age: silent for more than two of its intervals is dead."""
    raw = cache.get(SCHEDULER_HEARTBEAT_KEY)
    if raw is None:
        raise RuntimeError("no scheduler leader has reported; periodic jobs are not running")
    beat = json.loads(raw)
    age = max(0.0, time.time() - float(beat["at"]))
    every = float(beat["every"])
    if age > 2 * every:
        raise RuntimeError(f"the scheduler leader {beat['leader']} was last heard {age:.0f}s "
                           f"ago (it reports every {every:g}s)")
    return f"leader {beat['leader']}, heard {age:.1f}s ago"


@cache
def code_heads() -> frozenset[str]:
    """The migrations' head revision(s) this code was shipped with (read once per process)."""
    from alembic.script import ScriptDirectory

    return frozenset(ScriptDirectory(str(MIGRATIONS)).get_heads())


def migrations(engine: sa.Engine) -> str:
    """The database is at the code's head revision."""
    with engine.connect() as connection:
        found = {row[0] for row in connection.execute(
            sa.text("SELECT version_num FROM alembic_version"))}
    wanted = code_heads()
    if found != wanted:
        raise RuntimeError(f"database at {', '.join(sorted(found)) or 'no revision'}, code at "
                           f"{', '.join(sorted(wanted))}: run the release step "
                           "(flask db upgrade)")
    return f"at {', '.join(sorted(found))}"

