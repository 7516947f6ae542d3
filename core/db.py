"""Database plumbing: the declarative base, portable column types, the engine and sessions.

PostgreSQL in production, SQLite in the embedded default; the same models and migrations run on
both. SQLite needs WAL, a busy timeout and `BEGIN IMMEDIATE` to survive the in-process worker
writing beside the web thread.
"""

from __future__ import annotations

import functools
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import JSON, DateTime, MetaData, TypeDecorator, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.orm import DeclarativeBase, QueryableAttribute, Session, sessionmaker

from core.config import ConfigError

# Stable constraint names, so migrations can drop and alter them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite forgets the zone on its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use core.clock.now()")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONType, uuid.UUID: sa.Uuid()}


def new_id() -> uuid.UUID:
    return uuid.uuid4()


# A pooled connection idle longer than this is pinged before it is handed out ...
IDLE_BEFORE_PING_SECONDS = 5.0
# ... and must answer the ping within this, or it is replaced.
PING_TIMEOUT_SECONDS = 2.0
# With a statement timeout, the client gives up on the server this much later than the server
# gives up on the statement: time for the server's own cancellation to arrive.
ANSWER_MARGIN_SECONDS = 2.0
# Every pool holds more connections than its process has threads: waiting longer for one means
# they are all stuck, and the request is better answered at once.
POOL_TIMEOUT_SECONDS = 3.0
# libpq settings for every connection, unless DATABASE_URL sets them. Keepalives find a peer that
# vanished (host down, path gone) within about a minute even while the connection is idle;
# `tcp_user_timeout` fails a connection whose sent bytes stay unacknowledged for 30 s. Neither
# can tell a silent server from a slow one: that is the answer timeout's job (core.pgconn).
CONNECTION_DEFAULTS: dict[str, int | str] = {
    "connect_timeout": 3,
    "application_name": "practice-platform",
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,
}


class DatabaseUnavailable(Exception):
    """The database cannot be reached; the message is one line, with the password hidden."""


def create_db_engine(url: str | sa.URL, *, pool_size: int = 10, durable_commits: bool = True,
                     statement_timeout_ms: int | None = None) -> Engine:
    """`durable_commits=False` gives connections whose commits do not wait for the disk; only
    ever for markers (see `Database.execute_marker`), never for the application's data.

    `statement_timeout_ms` (PostgreSQL): the server cancels a statement that runs longer, and
    the client stops waiting for any answer `ANSWER_MARGIN_SECONDS` after that; None or 0: no
    bound on either side (migrations must never be cut short)."""
    if str(url).startswith("sqlite"):
        return _sqlite_engine(str(url))
    engine = sa.create_engine(
        url,
        # At least a worker process's threads (8 by default), so connections are reused, not
        # opened and closed as overflow.
        pool_size=pool_size,
        max_overflow=10,
        pool_timeout=POOL_TIMEOUT_SECONDS,
    )
    _connect_with_bounds(engine, statement_timeout_ms or None, durable_commits)
    _ping_connections_left_idle(engine)
    return engine


def _connect_with_bounds(engine: Engine, statement_timeout_ms: int | None,
                         durable_commits: bool) -> None:
    from core.pgconn import BoundedConnection

    server_settings = []
    if statement_timeout_ms is not None:
        server_settings.append(f"-c statement_timeout={statement_timeout_ms}")
    if not durable_commits:
        server_settings.append("-c synchronous_commit=off")
    answer_timeout = (None if statement_timeout_ms is None
                      else statement_timeout_ms / 1000 + ANSWER_MARGIN_SECONDS)

    @event.listens_for(engine, "do_connect")
    def _connect(_dialect: Any, _record: Any, cargs: list[Any],
                 cparams: dict[str, Any]) -> BoundedConnection:
        for name, value in CONNECTION_DEFAULTS.items():
            cparams.setdefault(name, value)
        if server_settings:
            # Ours last: the answer timeout above is computed from them, so they must win.
            cparams["options"] = " ".join([cparams.get("options", ""), *server_settings]).strip()
        connection = BoundedConnection.connect(*cargs, **cparams)
        connection.answer_timeout = answer_timeout
        return connection


def _ping_connections_left_idle(engine: Engine) -> None:
    """Check a pooled connection before use only if it sat idle for a while.

    SQLAlchemy's `pool_pre_ping` pings at every checkout: a round trip per transaction, a tenth
    of a busy request's database time. A connection used a moment ago is alive; one idle for a
    while may have been dropped (a database restart, a proxy's idle timeout) and gets pinged, a
    dead one replaced (the pool retries with a fresh connection). A connection that dies in use
    fails that one transaction, and SQLAlchemy then replaces every pooled connection at once."""

    @event.listens_for(engine, "checkin")
    def _note_idle(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < IDLE_BEFORE_PING_SECONDS:
            return
        try:
            with dbapi_connection.answering_within(PING_TIMEOUT_SECONDS):
                engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise sa.exc.DisconnectionError(f"pooled connection is gone: {error}") from error


def _sqlite_engine(url: str) -> Engine:
    path = sa.engine.make_url(url).database
    if path and path != ":memory:":
        from pathlib import Path

        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        url, pool_pre_ping=True, connect_args={"timeout": 30, "check_same_thread": False}
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite so that BEGIN IMMEDIATE below is ours.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        # A deferred transaction that later writes fails at once (SQLITE_BUSY) when another
        # writer got in first; taking the write lock up front makes it wait its turn instead.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def describe_url(url: str) -> str:
    return sa.engine.make_url(url).render_as_string(hide_password=True)


def check_connection(engine: Engine) -> None:
    """Raise DatabaseUnavailable with a one-line reason if `SELECT 1` fails."""
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as error:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        raise DatabaseUnavailable(
            f"cannot reach the database at {describe_url(str(engine.url))}: {reason}"
        ) from None


def rls_bypass_reason(engine: Engine) -> str | None:
    """Why row-level security would not bind this engine's role (a superuser, BYPASSRLS), or
    None. Every tenant wall below the ORM depends on the answer being None."""
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as connection:
        role, superuser, bypass = connection.execute(sa.text(
            "SELECT current_user, rolsuper, rolbypassrls FROM pg_roles "
            "WHERE rolname = current_user")).one()
    if superuser:
        return f"the database role {role!r} is a superuser"
    if bypass:
        return f"the database role {role!r} has BYPASSRLS"
    return None


def require_rls_bound_role(engine: Engine) -> None:
    """Production refuses to serve as a role that skips row-level security."""
    reason = rls_bypass_reason(engine)
    if reason:
        raise ConfigError(f"APP_ENV=production: {reason}, so row-level security would not "
                          "apply; connect as a plain role (see deploy/postgres/10-app-role.sql)")


class Database:
    """An engine and its session factory; one per process (or per test app)."""

    def __init__(self, url: str, *, engine: Engine | None = None,
                 statement_timeout_ms: int | None = None) -> None:
        self.url = url
        self.statement_timeout_ms = statement_timeout_ms
        self.engine = engine or create_db_engine(url, statement_timeout_ms=statement_timeout_ms)
        self.sessions: sessionmaker[Session] = sessionmaker(self.engine, expire_on_commit=False)
        self._local = threading.local()
        self._markers: Engine | None = None  # its own pool: see execute_marker
        self._markers_lock = threading.Lock()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def session(self) -> Session:
        return self.sessions()

    def execute_marker(self, statement: sa.Executable,
                       parameters: dict[str, Any] | None = None) -> None:
        """One idempotent bookkeeping statement (a "this effect is done" marker), committed on
        its own outside any session, over a connection this thread keeps from a pool of its
        own, without waiting for the disk (`synchronous_commit = off`: a round trip and a flush
        less per effect). A worker crash loses nothing; a database crash may forget the last
        fraction of a second of markers, whose effects then show as still running — repeated
        only if their message comes again, as after any failure. Tables without row-level
        security only. PostgreSQL only: on SQLite every connection takes the write lock in a
        transaction of its own (see `_sqlite_engine`)."""
        assert self.dialect == "postgresql"
        for attempt in (1, 2):
            connection = self._marker_connection()
            try:
                connection.execute(statement, parameters)
                return
            except sa.exc.DBAPIError as error:
                self._local.connection = None
                connection.close()
                # A connection the server dropped while this thread kept it: once more.
                if attempt == 2 or not error.connection_invalidated:
                    raise

    def _marker_connection(self) -> sa.Connection:
        connection: sa.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            with self._markers_lock:
                if self._markers is None:
                    # A pool of its own: a connection that does not wait for the disk must never
                    # be handed to a transaction that writes the application's data.
                    self._markers = create_db_engine(
                        self.engine.url, durable_commits=False,
                        statement_timeout_ms=self.statement_timeout_ms,
                    ).execution_options(isolation_level="AUTOCOMMIT")
            connection = self._markers.connect()
            self._local.connection = connection
        return connection

    def dispose(self) -> None:
        self.engine.dispose()
        if self._markers is not None:
            self._markers.dispose()


def conflict_insert(dialect: str, table: sa.Table) -> postgresql.Insert:
    """An INSERT into `table` that takes ON CONFLICT clauses: PostgreSQL's, or SQLite's, which
    are spelled the same (`on_conflict_do_nothing`, `on_conflict_do_update`, `excluded`)."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)  # type: ignore[return-value]


def insert_ignoring_conflicts(session: Session, table: sa.Table,
                              rows: list[dict[str, Any]]) -> None:
    """INSERT … ON CONFLICT DO NOTHING on PostgreSQL and SQLite, many rows in one statement.

    No RETURNING: on PostgreSQL it makes a 500-row insert about four times slower."""
    if not rows:
        return
    insert = conflict_insert(session.get_bind().dialect.name, table)
    session.execute(insert.on_conflict_do_nothing(), rows)


def insert_new_keys(session: Session, table: sa.Table, key: str, keys: list[Any],
                    same: dict[str, Any]) -> set[Any]:
    """One row per key, every other column from `same`, skipping keys that exist already;
    returns the keys it inserted. On PostgreSQL one fixed statement over an array of keys
    (`unnest`), compiled once however many keys come (a multi-row VALUES was compiled anew for
    every batch, which cost more than the database did); on SQLite one row per parameter set."""
    if not keys:
        return set()
    if session.get_bind().dialect.name != "postgresql":
        rows = [{key: k, **same} for k in keys]
        many = sqlite.insert(table).on_conflict_do_nothing().returning(table.c[key])
        return set(session.execute(many, rows).scalars())
    statement = _insert_unnested(table, key, tuple(same))
    parameters = {"new_keys": keys, **{f"same_{name}": value for name, value in same.items()}}
    return set(session.execute(statement, parameters).scalars())


@functools.cache
def _insert_unnested(table: sa.Table, key: str, names: tuple[str, ...]) -> sa.Executable:
    from sqlalchemy.dialects.postgresql import ARRAY, insert

    columns = table.c
    keys = sa.func.unnest(sa.bindparam("new_keys", type_=ARRAY(columns[key].type)))
    rows = sa.select(keys, *(sa.bindparam(f"same_{name}", type_=columns[name].type)
                             for name in names))
    return (insert(table).from_select([key, *names], rows).on_conflict_do_nothing()
            .returning(columns[key]))


def id_in(
    column: sa.ColumnElement[Any] | QueryableAttribute[Any], ids: list[Any], dialect: str
) -> sa.ColumnElement[bool]:
    """`column IN ids`; one array parameter on PostgreSQL instead of hundreds of placeholders
    (which psycopg would parse again for every batch)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        return column == sa.any_(sa.bindparam("ids", ids, type_=ARRAY(column.type)))
    return column.in_(ids)
