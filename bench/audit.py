"""Audit rows per second: the platform's batched writer against one row per transaction, both
through `core.audit.writer` on the same database.

Baseline (`audit-single-row`): `write_direct` for one security entry per unit of work, as the
`write_security_audit` actor does. Entry (`audit-batched`): events are put in the outbox first
(untimed, by units of work without a publisher, so nothing is sent), then `write_pending` is
timed until it finds nothing left. Each measurement starts from empty tables.

The platform's modules are imported only when these entries run (see `bench.pipeline`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import sqlalchemy as sa

from bench import backends
from bench.measure import Context, MeasurementError, Sample

if TYPE_CHECKING:
    from core.db import Database

AUDIT_TABLES = ("audit_entries", "events")  # handler_runs follow events (ON DELETE CASCADE)
RECORD_CHUNK = 500  # events per unit of work while filling the outbox (untimed)


def single_row_rate(ctx: Context) -> Sample:
    from core.audit.security import security_entry
    from core.audit.writer import write_direct
    from core.events.types import EventType
    from core.uow import Origin, UnitOfWork

    rows = ctx.options.audit_rows
    origin = Origin(ip="203.0.113.7", user_agent="bench/1.0")
    entries = [security_entry(EventType.ACCESS_DENIED, origin, payload={"path": f"/bench/{n}"})
               for n in range(rows)]
    with _database(ctx) as db:
        start = time.perf_counter()
        for entry in entries:
            with UnitOfWork(db) as uow:
                write_direct(uow, [entry])
        elapsed = time.perf_counter() - start
        _check_rows(db, rows)
    return Sample(value=rows / elapsed)


def batched_rate(ctx: Context) -> Sample:
    from core.audit.writer import write_pending
    from core.uow import UnitOfWork

    rows = ctx.options.audit_rows
    with _database(ctx) as db:
        _fill_outbox(db, rows)
        start = time.perf_counter()
        with UnitOfWork(db) as uow:
            while write_pending(uow) > 0:
                pass
        elapsed = time.perf_counter() - start
        _check_rows(db, rows)
    return Sample(value=rows / elapsed)


@contextmanager
def _database(ctx: Context) -> Iterator[Database]:
    """The platform's own `Database` on emptied audit tables."""
    from core.config import Settings
    from core.db import Database

    backends.clear_tables(*AUDIT_TABLES)
    db = Database(Settings.from_env(ctx.env).database_url)
    try:
        yield db
    finally:
        db.dispose()


def _fill_outbox(db: Database, events: int) -> None:
    from core.events.types import EventType
    from core.uow import UnitOfWork

    for first in range(0, events, RECORD_CHUNK):
        # No publisher: the events stay in the outbox, unaudited, and nothing reaches the broker.
        with UnitOfWork(db) as uow:
            for number in range(first, min(first + RECORD_CHUNK, events)):
                uow.record(EventType.TEST_EMAIL_REQUESTED, subject="mail:test",
                           payload={"to": f"bench{number}@example.com"})
            uow.commit()


def _check_rows(db: Database, expected: int) -> None:
    with db.engine.connect() as connection:
        written = connection.scalar(sa.text("SELECT count(*) FROM audit_entries"))
    if written != expected:
        raise MeasurementError(f"expected {expected} audit entries, found {written}")
