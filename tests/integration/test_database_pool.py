"""Pooled PostgreSQL connections that the server dropped: replaced, not handed out dead."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

import core.db
from core.config import normalise_database_url
from core.db import create_db_engine
from tests.conftest import TEST_DATABASE_URL

pytestmark = pytest.mark.integration


@pytest.fixture
def engine():
    if not TEST_DATABASE_URL:
        pytest.skip("needs TEST_DATABASE_URL (CI sets it)")
    engine = create_db_engine(normalise_database_url(TEST_DATABASE_URL), pool_size=1)
    yield engine
    engine.dispose()


def _backend_pid(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(sa.text("SELECT pg_backend_pid()")))


def _terminate(engine: sa.Engine, pid: int) -> None:
    admin = sa.create_engine(normalise_database_url(TEST_DATABASE_URL or ""))
    with admin.connect() as connection:
        assert connection.scalar(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    admin.dispose()


def test_a_connection_dropped_while_idle_is_replaced_before_use(engine, monkeypatch) -> None:
    first = _backend_pid(engine)
    _terminate(engine, first)  # a database restart, a proxy's idle timeout
    monkeypatch.setattr(core.db, "IDLE_BEFORE_PING_SECONDS", 0.0)
    second = _backend_pid(engine)  # no error: the ping found it dead, the pool reconnected
    assert second != first


def test_a_connection_in_steady_use_is_not_pinged(engine, monkeypatch) -> None:
    pings = []
    ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda dbapi: pings.append(1) or ping(dbapi))
    pids = {_backend_pid(engine) for _ in range(5)}
    assert len(pids) == 1 and pings == []
    monkeypatch.setattr(core.db, "IDLE_BEFORE_PING_SECONDS", 0.0)
    _backend_pid(engine)
    assert pings == [1]


def test_a_connection_that_died_in_use_fails_once_then_the_pool_recovers(engine) -> None:
    _terminate(engine, _backend_pid(engine))
    with pytest.raises(sa.exc.OperationalError) as failed:  # used at once: no ping yet
        _backend_pid(engine)
    assert failed.value.connection_invalidated
    assert _backend_pid(engine) > 0


def test_a_marker_survives_its_kept_connection_being_dropped(engine) -> None:
    from core.db import Database

    database = Database(str(engine.url), engine=engine)
    pid = sa.select(sa.func.pg_backend_pid())
    database.execute_marker(pid)
    kept = database._marker_connection()
    _terminate(engine, kept.scalar(pid))
    database.execute_marker(sa.text("SELECT 1"))  # reconnected and ran, no error
    assert database._marker_connection() is not kept


def test_only_markers_commit_without_waiting_for_the_disk(engine) -> None:
    from core.db import Database

    database = Database(str(engine.url), engine=engine)
    show = sa.text("SHOW synchronous_commit")
    database.execute_marker(sa.text("SELECT 1"))
    assert database._marker_connection().scalar(show) == "off"
    with database.session() as session:  # the application's data: durable, whatever came first
        assert session.execute(show).scalar() == "on"
    database.dispose()


def test_threads_that_ended_give_their_marker_connections_back() -> None:
    """Each thread keeps a connection for its "done" markers; workers stopped and replaced in
    one process (as the tests' embedded workers are) must not drain that pool."""
    if not TEST_DATABASE_URL:
        pytest.skip("needs TEST_DATABASE_URL (CI sets it)")
    database = core.db.Database(normalise_database_url(TEST_DATABASE_URL))
    failures: list[BaseException] = []

    def mark() -> None:
        try:
            database.execute_marker(sa.text("SELECT 1"))
        except BaseException as error:  # the assertion below shows it
            failures.append(error)

    try:
        for _ in range(30):  # the pool holds 10 + 10 overflow
            thread = threading.Thread(target=mark)
            thread.start()
            thread.join(timeout=10)
    finally:
        database.dispose()
    assert failures == []
