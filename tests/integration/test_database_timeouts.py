"""No wait on PostgreSQL is unbounded: a slow statement is cancelled by the server, a silent
server (a stopped proxy, a dropped path) is given up on by the client, and the pool recovers."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

import core.db
from core.config import normalise_database_url
from core.db import create_db_engine
from core.pgconn import ServerDidNotAnswer
from tests.conftest import TEST_DATABASE_URL
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

STATEMENT_TIMEOUT_MS = 500
# However the call ends, it must have ended by then (the bounds here add up to a few seconds).
CALL_DEADLINE = 20.0


@pytest.fixture
def database_url() -> str:
    if not TEST_DATABASE_URL:
        pytest.skip("needs TEST_DATABASE_URL (CI sets it)")
    return normalise_database_url(TEST_DATABASE_URL)


@pytest.fixture
def proxy(database_url: str) -> Iterator[TcpProxy]:
    url = sa.engine.make_url(database_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    proxy.restore()
    yield proxy
    proxy.close()


@pytest.fixture
def engine(database_url: str, proxy: TcpProxy) -> Iterator[sa.Engine]:
    """A web process's engine, reaching the database through the proxy."""
    url = sa.engine.make_url(database_url).set(host="127.0.0.1", port=proxy.port)
    engine = create_db_engine(url, pool_size=2, statement_timeout_ms=STATEMENT_TIMEOUT_MS)
    yield engine
    engine.dispose()


def outcome(call: Callable[[], Any]) -> Any:
    """Run `call` in a thread and return its result or the exception it raised; fail the test
    (rather than hang it) if it is still waiting after CALL_DEADLINE."""
    box: list[Any] = []

    def run() -> None:
        try:
            box.append(call())
        except BaseException as error:  # handed back to the test
            box.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(CALL_DEADLINE)
    assert box, f"still waiting on the database after {CALL_DEADLINE}s"
    return box[0]


def scalar(engine: sa.Engine, sql: str) -> Any:
    with engine.connect() as connection:
        return connection.scalar(sa.text(sql))


def test_a_silent_server_fails_the_statement_and_the_pool_recovers(engine, proxy) -> None:
    assert scalar(engine, "SELECT 1") == 1
    proxy.blackhole()
    failed = outcome(lambda: scalar(engine, "SELECT 2"))
    assert isinstance(failed, sa.exc.OperationalError), failed
    assert isinstance(failed.orig, ServerDidNotAnswer)
    assert failed.connection_invalidated  # closed, never handed out again
    proxy.restore()
    assert scalar(engine, "SELECT 3") == 3  # no restart needed


def test_a_commit_the_server_never_answers_fails(engine, proxy) -> None:
    with engine.connect() as connection:
        connection.execute(sa.text("CREATE TEMPORARY TABLE scratch (n int)"))
        connection.execute(sa.text("INSERT INTO scratch VALUES (1)"))
        proxy.blackhole()
        failed = outcome(connection.commit)
    assert isinstance(failed, sa.exc.OperationalError), failed
    assert failed.connection_invalidated


def test_a_transaction_that_cannot_even_begin_fails_the_same_way(engine, proxy) -> None:
    import core.scoping  # noqa: F401 - its session event opens every transaction
    from core.db import Database

    database = Database(str(engine.url), engine=engine)
    assert scalar(engine, "SELECT 1") == 1
    proxy.blackhole()
    with database.session() as session:
        # The row-level security settings go to the driver first, past SQLAlchemy.
        failed = outcome(lambda: session.execute(sa.text("SELECT 1")))
    assert isinstance(failed, sa.exc.OperationalError), failed
    assert failed.connection_invalidated
    proxy.restore()
    assert scalar(engine, "SELECT 2") == 2


def test_new_connections_to_a_silent_server_time_out(engine, proxy) -> None:
    proxy.blackhole()  # accepts, never answers the start-up packet
    failed = outcome(lambda: scalar(engine, "SELECT 1"))
    assert isinstance(failed, sa.exc.OperationalError), failed
    assert "timeout" in str(failed.orig).lower()


def test_the_idle_ping_is_bounded(engine, proxy, monkeypatch) -> None:
    assert scalar(engine, "SELECT 1") == 1
    monkeypatch.setattr(core.db, "IDLE_BEFORE_PING_SECONDS", 0.0)
    pings: list[float | None] = []
    ping = engine.dialect.do_ping

    def noted_ping(dbapi_connection: Any) -> bool:
        pings.append(dbapi_connection.answer_timeout)
        return bool(ping(dbapi_connection))

    monkeypatch.setattr(engine.dialect, "do_ping", noted_ping)
    proxy.blackhole()
    failed = outcome(lambda: scalar(engine, "SELECT 1"))
    # The ping gave up, the pool tried a fresh connection, and that timed out too.
    assert isinstance(failed, sa.exc.OperationalError), failed
    assert pings == [core.db.PING_TIMEOUT_SECONDS]


def test_a_slow_statement_is_cancelled_by_the_server_and_the_connection_kept(engine) -> None:
    with engine.connect() as connection:
        pid = connection.scalar(sa.text("SELECT pg_backend_pid()"))
        with pytest.raises(sa.exc.OperationalError) as cancelled:
            connection.execute(sa.text("SELECT pg_sleep(5)"))
        assert "statement timeout" in str(cancelled.value.orig)
        assert not cancelled.value.connection_invalidated
        connection.rollback()
        assert connection.scalar(sa.text("SELECT pg_backend_pid()")) == pid


def test_migrations_are_not_bounded_but_every_connection_has_keepalives(database_url) -> None:
    migrations = create_db_engine(database_url)  # what migrations/env.py builds
    web = create_db_engine(database_url, statement_timeout_ms=STATEMENT_TIMEOUT_MS)
    try:
        with migrations.connect() as connection:
            assert connection.scalar(sa.text("SHOW statement_timeout")) == "0"
            assert connection.connection.dbapi_connection.answer_timeout is None
            parameters = connection.connection.dbapi_connection.info.get_parameters()
        with web.connect() as connection:
            assert connection.scalar(sa.text("SHOW statement_timeout")) == "500ms"
    finally:
        migrations.dispose()
        web.dispose()
    assert parameters["keepalives"] == "1" and parameters["tcp_user_timeout"] == "30000"


def test_settings_in_the_database_url_are_kept(database_url) -> None:
    url = sa.engine.make_url(database_url).update_query_dict(
        {"application_name": "from-the-url", "options": "-c lock_timeout=1234"})
    engine = create_db_engine(url, statement_timeout_ms=STATEMENT_TIMEOUT_MS)
    try:
        with engine.connect() as connection:
            assert connection.scalar(sa.text("SHOW application_name")) == "from-the-url"
            assert connection.scalar(sa.text("SHOW lock_timeout")) == "1234ms"
            assert connection.scalar(sa.text("SHOW statement_timeout")) == "500ms"
    finally:
        engine.dispose()


@pytest.mark.parametrize(("module", "variable"), [
    ("wsgi", "DATABASE_STATEMENT_TIMEOUT_MS"), ("workers.boot", "WORKER_STATEMENT_TIMEOUT_MS"),
])
def test_each_process_takes_its_own_statement_timeout(database_url, redis_url, tmp_path,
                                                      module, variable) -> None:
    from tests.support.processes import platform_env, run

    env = platform_env(DATABASE_URL=database_url, REDIS_URL=redis_url,
                       INSTANCE_PATH=str(tmp_path), LOG_LEVEL="WARNING",
                       DATABASE_STATEMENT_TIMEOUT_MS="1111", WORKER_STATEMENT_TIMEOUT_MS="2222")
    # Each process's composition root: the web's app and the worker's side.
    built = {"wsgi": "wsgi.app.extensions['services']",
             "workers.boot": "workers.boot.side.services"}
    show = (f"import {module}, sqlalchemy as sa\n"
            f"with {built[module]}.db.engine.connect() as c:\n"
            "    print(c.scalar(sa.text('SHOW statement_timeout')))")
    result = run([sys.executable, "-c", show], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == {"DATABASE_STATEMENT_TIMEOUT_MS": "1111ms",
                                         "WORKER_STATEMENT_TIMEOUT_MS": "2222ms"}[variable]
