"""Audit rows per second: the platform's batched writer (hash chain on) against one row per
transaction, and against PostgreSQL's COPY of the same rows into the same table.

Baseline (`audit-single-row`): `write_direct` for one security entry per unit of work, as the
`write_security_audit` actor does. Entry (`audit-batched`, and `audit-chained` beside the COPY
baseline): events are put in the outbox first (untimed, by units of work without a publisher,
so nothing is sent), then `write_pending` is timed until it finds nothing left: reading the
events, chaining them (sequence numbers under the heads' locks, SHA-256 per entry), inserting
the entries and marking the events audited. Baseline (`audit-copy`): the same number of entries,
chained beforehand (untimed), loaded by one COPY in one transaction as the superuser (PostgreSQL
refuses COPY FROM into a table with row-level security to any other role); `copy_500_rows_per_s`
is the same rows in COPYs of 500, and `insert_500_rows_per_s` the same rows inserted as the
writer inserts them (the application's role, `partitions.insert_entries`, 500 per transaction):
the floor of the writer's own INSERTs, before it reads, chains or marks a single event;
`chaining_rows_per_s` is the rate at which the same entries were chained (built from their
events, salted, hashed) in Python, which no writer can skip either. Each measurement starts from
empty tables.

The platform's modules are imported only when these entries run (see `bench.pipeline`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from bench import backends
from bench.measure import Context, MeasurementError, Sample

if TYPE_CHECKING:
    from core.db import Database

# handler_runs follow events (ON DELETE CASCADE)
AUDIT_TABLES = ("audit_entries", "audit_chains", "events")
RECORD_CHUNK = 500  # events per unit of work while filling the outbox (untimed)


def single_row_rate(ctx: Context) -> Sample:
    from core.audit.security import security_entry
    from core.audit.writer import write_direct
    from core.events.types import EventType
    from core.scoping import TenantContext
    from core.uow import Origin, UnitOfWork

    rows = ctx.options.audit_rows
    origin = Origin(ip="203.0.113.7", user_agent="bench/1.0")
    entries = [security_entry(EventType.ACCESS_DENIED, origin, payload={"path": f"/bench/{n}"})
               for n in range(rows)]
    with _database(ctx) as db:
        start = time.perf_counter()
        for entry in entries:
            with UnitOfWork(db, tenant=TenantContext.system()) as uow:
                write_direct(uow, [entry])
        elapsed = time.perf_counter() - start
        _check_rows(db, rows)
    return Sample(value=rows / elapsed)


def batched_rate(ctx: Context) -> Sample:
    from core.audit.writer import write_pending
    from core.scoping import TenantContext
    from core.uow import UnitOfWork

    rows = ctx.options.audit_rows
    with _database(ctx) as db:
        _fill_outbox(db, rows)
        start = time.perf_counter()
        with UnitOfWork(db, tenant=TenantContext.system()) as uow:
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
    written = backends.count_every_practice(db.engine, "audit_entries")
    if written != expected:
        raise MeasurementError(f"expected {expected} audit entries, found {written}")


def copy_rate(ctx: Context) -> Sample:
    import psycopg

    rows = ctx.options.audit_rows
    start = time.perf_counter()
    entries = _chained_entries(rows)
    chaining = time.perf_counter() - start
    columns = _copy_columns()
    statement = f"COPY audit_entries ({', '.join(columns)}) FROM STDIN"
    timings = []
    for chunk in (rows, 500):
        backends.clear_tables(*AUDIT_TABLES)
        with psycopg.connect(backends.BENCH.owner_url) as connection:
            start = time.perf_counter()
            for first in range(0, rows, chunk):
                with connection.cursor() as cursor, cursor.copy(statement) as copy:
                    for entry in entries[first:first + chunk]:
                        copy.write_row(_copy_row(entry, columns))
                connection.commit()
            timings.append(time.perf_counter() - start)
        _check_copied(rows)
    backends.clear_tables(*AUDIT_TABLES)
    inserted = _insert_seconds(ctx, entries)
    backends.clear_tables(*AUDIT_TABLES)
    return Sample(value=rows / timings[0], extra={"copy_500_rows_per_s": round(rows / timings[1]),
                                                 "insert_500_rows_per_s": round(rows / inserted),
                                                 "chaining_rows_per_s": round(rows / chaining)})


def _insert_seconds(ctx: Context, entries: list[dict[str, Any]]) -> float:
    """The entries inserted with the writer's own statement, role and batch size (s)."""
    from core.audit import partitions
    from core.audit.writer import AUDIT_BATCH
    from core.scoping import TenantContext
    from core.uow import UnitOfWork

    with _database(ctx) as db, UnitOfWork(db, tenant=TenantContext.system()) as uow:
        partitions.ensure_months(uow.session, {entry["created_at"] for entry in entries})
        uow.commit()
        start = time.perf_counter()
        for first in range(0, len(entries), AUDIT_BATCH):
            partitions.insert_entries(uow.session, entries[first:first + AUDIT_BATCH])
            uow.commit()
        elapsed = time.perf_counter() - start
    _check_copied(len(entries))
    return elapsed


def _check_copied(expected: int) -> None:
    import psycopg

    with psycopg.connect(backends.BENCH.owner_url) as connection:
        found = connection.execute("SELECT count(*) FROM audit_entries").fetchone()
    if found is None or found[0] != expected:
        raise MeasurementError(f"expected {expected} copied entries, found {found}")


def _copy_columns() -> tuple[str, ...]:
    from core.audit.partitions import INSERT_COLUMNS

    return INSERT_COLUMNS


def _copy_row(entry: dict[str, Any], columns: tuple[str, ...]) -> tuple[Any, ...]:
    from psycopg.types.json import Jsonb

    return tuple(Jsonb(entry[c]) if c == "metadata" else entry[c] for c in columns)


def _chained_entries(rows: int) -> list[dict[str, Any]]:
    """Entries as the writer makes them from `_fill_outbox`'s events, chained the same way."""
    import uuid

    from core import clock
    from core.audit import chain

    head, prev = 0, chain.GENESIS
    entries = []
    for number in range(rows):
        now = clock.now()
        entry = {"chain_id": chain.PLATFORM_CHAIN, "event_id": uuid.uuid4(),
                 "type": "TEST_EMAIL_REQUESTED", "outcome": "success", "tenant_id": None,
                 "actor_account_id": None, "subject": "mail:test", "ip": None,
                 "user_agent": None, "request_id": None,
                 "metadata": {"to": f"bench{number}@example.com"}, "occurred_at": now,
                 "created_at": now, "seq": head + 1, "prev_hash": prev}
        salt = chain.new_salt()
        entry["personal_salt"] = salt
        entry["personal_digest"] = chain.personal_digest(salt, entry)
        entry["hash"] = chain.entry_hash(entry)
        head, prev = head + 1, entry["hash"]
        entries.append(entry)
    return entries
