"""Shared fixtures: real backends when TEST_DATABASE_URL / TEST_REDIS_URL are set, else embedded.

* The schema is built once per run with `alembic upgrade head`; each test then starts from empty
  tables (rows deleted after the test), so tests that commit, and worker processes that read
  those commits, behave exactly as in production.
* Redis (when set) uses the database number in TEST_REDIS_URL, flushed around each test.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ports import free_port  # noqa: E402  (the tests import it from here)
from core.config import Settings, normalise_database_url  # noqa: E402
from core.db import Database, describe_url  # noqa: E402
from core.models import Base  # noqa: E402

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL") or None
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL") or None
TEST_RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL") or None
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _check_backends() -> list[str]:
    problems = []
    if TEST_DATABASE_URL:
        try:
            engine = sa.create_engine(normalise_database_url(TEST_DATABASE_URL),
                                      connect_args={"connect_timeout": 3})
            with engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
            engine.dispose()
        except Exception as error:
            problems.append(f"TEST_DATABASE_URL is set but unreachable: {error}".splitlines()[0])
    if TEST_REDIS_URL:
        import redis

        try:
            redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=2).ping()
        except Exception as error:
            problems.append(f"TEST_REDIS_URL is set but unreachable: {error}")
    return problems


def pytest_configure(config: pytest.Config) -> None:
    """argon2 at production cost (64 MiB, 3 passes) for every password a test sets would be
    most of the suite's time: tests hash cheaply; one test checks the production parameters."""
    from argon2 import PasswordHasher

    from core.identity import passwords

    passwords.HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def pytest_sessionstart(session: pytest.Session) -> None:
    problems = _check_backends()
    if problems:
        pytest.exit("\n".join(problems), returncode=3)


def pytest_report_header(config: pytest.Config) -> list[str]:
    if TEST_DATABASE_URL or TEST_REDIS_URL:
        db = (describe_url(normalise_database_url(TEST_DATABASE_URL)) if TEST_DATABASE_URL
              else "SQLite")
        return [f"backends: database {db}; redis {TEST_REDIS_URL or 'in-process'}; "
                f"rabbitmq {TEST_RABBITMQ_URL or 'not set'}"]
    return ["backends: embedded (SQLite, in-process broker and cache); set TEST_DATABASE_URL and "
            "TEST_REDIS_URL to run against PostgreSQL and Redis"]


# -- database ----------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def instance_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("instance")


# The platform connects as this role in the tests, as it does in production: not a superuser,
# no BYPASSRLS, so every test runs behind the row-level security policies too. It owns the test
# schema (the release step runs as it); TEST_DATABASE_URL's own role only creates it.
APP_ROLE = "platform_test_app"
APP_ROLE_PASSWORD = "platform-test-app"


@pytest.fixture(scope="session")
def admin_database_url() -> str:
    """TEST_DATABASE_URL as given: a role that may create roles and terminate backends."""
    if not TEST_DATABASE_URL:
        if IN_CI:
            pytest.fail("CI must set TEST_DATABASE_URL")
        pytest.skip("needs TEST_DATABASE_URL (CI always sets it)")
    return normalise_database_url(TEST_DATABASE_URL)


@pytest.fixture(scope="session")
def database_url(instance_dir: Path) -> str:
    if TEST_DATABASE_URL:
        return app_role_url(normalise_database_url(TEST_DATABASE_URL))
    return f"sqlite:///{instance_dir / 'test.db'}"


def app_role_url(admin_url: str) -> str:
    """Create the application role if needed; the URL that connects as it."""
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            exists = connection.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"),
                                        {"r": APP_ROLE}).first()
            # Another test run on this server may create it a moment before us.
            with contextlib.suppress(sa.exc.ProgrammingError):
                if not exists:
                    connection.execute(sa.text(
                        f"CREATE ROLE {APP_ROLE} LOGIN PASSWORD '{APP_ROLE_PASSWORD}' "
                        "NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE"))
    finally:
        admin.dispose()
    url = sa.engine.make_url(admin_url).set(username=APP_ROLE, password=APP_ROLE_PASSWORD)
    return url.render_as_string(hide_password=False)


def reset_schema(url: str, admin_url: str | None = None) -> None:
    """Drop everything, then build the schema the way production does: alembic upgrade head,
    run as the role the platform connects as (which then owns the schema). `admin_url`, when
    the schema itself must be recreated by another role, is used for that alone."""
    from alembic import command
    from alembic.config import Config

    owner = sa.engine.make_url(url).username
    engine = sa.create_engine(admin_url or url)
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
            connection.execute(sa.text(f'CREATE SCHEMA public AUTHORIZATION "{owner}"'))
    engine.dispose()
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["database_url"] = url
    config.attributes["configure_logging"] = False
    command.upgrade(config, "head")


@pytest.fixture(scope="session")
def database(database_url: str) -> Iterator[Database]:
    reset_schema(database_url, normalise_database_url(TEST_DATABASE_URL)
                 if TEST_DATABASE_URL else None)
    db = Database(database_url)
    yield db
    db.dispose()


# Append-only (triggers refuse DELETE): emptied past the triggers, as only a superuser can.
APPEND_ONLY_TABLES = ("audit_entries", "audit_checkpoints")
# Reference data the migrations seed (the plans); tests that change it restore it themselves.
SEEDED_TABLES = frozenset({"plans"})


def delete_all_rows(db: Database) -> None:
    with db.engine.begin() as connection:
        postgresql = connection.dialect.name == "postgresql"
        if postgresql:  # past row-level security: every tenant
            connection.execute(sa.text("SELECT set_config('app.all_tenants', 'on', true)"))
        else:  # SQLite's DELETE trigger lets a retention permit through
            connection.execute(sa.text("INSERT INTO audit_retention_permits (before) "
                                       "VALUES ('9999-12-31 00:00:00.000000')"))
        tables = [table for table in reversed(Base.metadata.sorted_tables)
                  if table.name not in SEEDED_TABLES
                  and not (postgresql and table.name in APPEND_ONLY_TABLES)]
        # The permit last: the entries' DELETE trigger reads it.
        tables.sort(key=lambda table: table.name == "audit_retention_permits")
        for table in tables:
            connection.execute(table.delete())
    if db.dialect == "postgresql":
        clear_append_only_tables(db)


def clear_append_only_tables(db: Database) -> None:
    """As the superuser of TEST_DATABASE_URL, with triggers off for the session."""
    admin_url = sa.engine.make_url(normalise_database_url(TEST_DATABASE_URL or "")).set(
        database=db.engine.url.database)
    engine = sa.create_engine(admin_url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("SET LOCAL session_replication_role = replica"))
            for table in APPEND_ONLY_TABLES:
                connection.execute(sa.text(f"DELETE FROM {table}"))
    finally:
        engine.dispose()


@pytest.fixture
def db(database: Database) -> Iterator[Database]:
    """The test database, emptied after the test."""
    yield database
    delete_all_rows(database)


# -- redis -------------------------------------------------------------------------------------

@pytest.fixture
def redis_url() -> Iterator[str]:
    if not TEST_REDIS_URL:
        if IN_CI:
            pytest.fail("CI must set TEST_REDIS_URL")
        pytest.skip("needs TEST_REDIS_URL (CI always sets it)")
    import redis

    client = redis.Redis.from_url(TEST_REDIS_URL)
    client.flushdb()
    yield TEST_REDIS_URL
    client.flushdb()
    client.close()


# -- app ---------------------------------------------------------------------------------------

# /metrics and /api/health's details answer to this bearer token in tests.
METRICS_TOKEN = "test-metrics-token-0123456789"
DETAILS = {"Authorization": f"Bearer {METRICS_TOKEN}"}


def make_settings(database_url: str, instance_dir: Path, **overrides: object) -> Settings:
    base = Settings(
        app_env="test",
        instance_path=instance_dir,
        database_url=database_url,
        secret_key="test-secret-key-that-is-long-enough-0123456789",
        rate_limit_anonymous="1000 per minute",
        rate_limit_authenticated="1000 per minute",
        rate_limit_auth_endpoints="1000 per minute",
        notification_streams=64,
        metrics_token=METRICS_TOKEN,
    )
    return base.with_overrides(**overrides)


@pytest.fixture
def settings(db: Database, database_url: str, instance_dir: Path) -> Settings:
    return make_settings(database_url, instance_dir)


@pytest.fixture
def app(settings: Settings, db: Database):  # type: ignore[no-untyped-def]
    from tests.support.apps import make_app

    application = make_app(settings, db)
    yield application


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


@pytest.fixture
def side(app):  # type: ignore[no-untyped-def]
    """The app's worker side: its runtime, actors, publisher and fast path."""
    from assembly import worker_side_of

    return worker_side_of(app)


@pytest.fixture
def worker(app):  # type: ignore[no-untyped-def]
    """The in-process worker draining the `app` fixture's in-process broker (embedded mode)."""
    from tests.support.workers import EmbeddedWorker

    running = EmbeddedWorker(app)
    yield running
    running.stop()


# -- smtp --------------------------------------------------------------------------------------

@pytest.fixture
def smtp_server() -> Iterator[object]:
    """A server that advertises PIPELINING, as production relays do; `plain_smtp_server` is one
    that does not."""
    from tests.support.smtp import SmtpSink

    sink = SmtpSink(port=free_port(), pipelining=True)
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def plain_smtp_server() -> Iterator[object]:
    from tests.support.smtp import SmtpSink

    sink = SmtpSink(port=free_port())
    sink.start()
    yield sink
    sink.stop()


# -- live server -------------------------------------------------------------------------------

@pytest.fixture
def live_server(app):  # type: ignore[no-untyped-def]
    from werkzeug.serving import make_server

    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    yield server
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture
def moved_clock():
    """`advance(delta)` moves the platform's clock forward (for a server in this process too:
    it reads the same `core.clock`); put back afterwards."""
    from datetime import timedelta

    from core import clock

    real = clock.now
    offset = [timedelta(0)]
    clock.now = lambda: real() + offset[0]

    def advance(delta: timedelta) -> None:
        offset[0] += delta

    yield advance
    clock.now = real
