"""PostgreSQL's side of the audit table: monthly partitions and the fast insert.

Months are created by `audit_ensure_partition` (migration 0008), ahead of time by the scheduled
retention job and, should that have been away, by the writer the first time it meets a month.
SQLite has one plain table: nothing to do there.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from psycopg.types.json import Jsonb
from sqlalchemy.orm import Session

MONTHS_AHEAD = 3
_known: set[tuple[str, str]] = set()  # (database url, "YYYYMM") this process saw exist
_known_lock = threading.Lock()

# One statement for a whole batch, a parameter per column (an array each): about twice the
# rows per second of a multi-row VALUES, whose text psycopg would parse again for every batch.
# (COPY would be faster still, but PostgreSQL refuses COPY FROM into a table with row-level
# security.)
INSERT_COLUMNS = ("chain_id", "seq", "prev_hash", "hash", "event_id", "type", "outcome",
                  "tenant_id", "request_id", "metadata", "occurred_at", "created_at",
                  "personal_digest", "actor_account_id", "subject", "ip", "user_agent",
                  "personal_salt")
_ARRAY_TYPES = ("uuid", "int8", "bytea", "bytea", "uuid", "text", "text", "uuid", "text",
                "jsonb", "timestamptz", "timestamptz", "bytea", "uuid", "text", "inet", "text",
                "bytea")
_INSERT = (  # built from the constants above, nothing from outside
    f"INSERT INTO audit_entries ({', '.join(INSERT_COLUMNS)}) SELECT * FROM unnest("  # noqa: S608
    + ", ".join(f"%b::{kind}[]" for kind in _ARRAY_TYPES) + ")"
)


def month_start(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def add_months(moment: datetime, months: int) -> datetime:
    index = moment.year * 12 + moment.month - 1 + months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def _url(session: Session) -> str:
    bind = session.get_bind()
    return str(bind.engine.url) if isinstance(bind, sa.Connection) else str(bind.url)


def ensure_months(session: Session, moments: Iterable[datetime]) -> None:
    if session.get_bind().dialect.name != "postgresql":
        return
    url = _url(session)
    for month in {month_start(moment) for moment in moments}:
        key = (url, month.strftime("%Y%m"))
        if key in _known:
            continue
        session.execute(sa.text("SELECT audit_ensure_partition(:month)"), {"month": month})
        with _known_lock:
            _known.add(key)


def ensure_ahead(session: Session, now: datetime, months: int = MONTHS_AHEAD) -> None:
    ensure_months(session, [add_months(month_start(now), n) for n in range(months + 1)])


def forget_month(session: Session, month: datetime) -> None:
    """Its partition was dropped (retention): make it again should an entry ever need it."""
    with _known_lock:
        _known.discard((_url(session), month_start(month).strftime("%Y%m")))


def insert_entries(session: Session, entries: list[dict[str, Any]]) -> None:
    columns: list[list[Any]] = [[] for _ in INSERT_COLUMNS]
    for entry in entries:
        for values, name in zip(columns, INSERT_COLUMNS, strict=True):
            value = entry[name]
            values.append(Jsonb(value) if name == "metadata" else value)
    cursor = session.connection().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(_INSERT, columns)
    finally:
        cursor.close()


def existing_months(session: Session) -> list[datetime]:
    """The months that have a partition, oldest first."""
    names = session.execute(sa.text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'audit_entries'::regclass ORDER BY c.relname")).scalars()
    return [datetime(int(name[-6:-2]), int(name[-2:]), 1, tzinfo=UTC) for name in names]
