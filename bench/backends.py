"""The platform under test: a fresh PostgreSQL database, a flushed Redis database, its environment.

Settings are production's (PostgreSQL, Redis broker, limiter on Redis, JSON request log lines)
except FORCE_HTTPS=false: wrk speaks plain HTTP on loopback, where a real deployment has a
TLS-terminating proxy in front.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import redis
from psycopg import sql

from bench.servers import BIN, ROOT

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# What the servers inherit from our shell; nothing else, so a developer's BROKER_URL, WEBHOOK_URL
# or GUNICORN_CMD_ARGS cannot change what is measured.
PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")


@dataclass(frozen=True)
class Backends:
    """A database of the run's own, reached as a plain role that owns it, and a Redis."""

    database_name: str
    # The platform connects as a plain role, as production must (a superuser would skip
    # row-level security, and with it part of the cost being measured); it owns the database.
    app_role: str
    redis_url: str

    @property
    def database_url(self) -> str:
        return (f"postgresql+psycopg://{self.app_role}:{self.app_role}@127.0.0.1:5432/"
                f"{self.database_name}")

    @property
    def owner_url(self) -> str:
        """The same database as the superuser (schema ownership, clearing tables)."""
        return f"postgresql://postgres@127.0.0.1:5432/{self.database_name}"


BENCH = Backends("bench_platform", "bench_platform_app", "redis://127.0.0.1:6379/14")
DATABASE_NAME, APP_ROLE, REDIS_URL = BENCH.database_name, BENCH.app_role, BENCH.redis_url
DATABASE_URL = BENCH.database_url


class SetupError(Exception):
    """PostgreSQL, Redis or the migrations are not ready for a run."""


def clean_env() -> dict[str, str]:
    return {name: os.environ[name] for name in PASSTHROUGH if name in os.environ}


def platform_env(instance_path: Path, backends: Backends = BENCH) -> dict[str, str]:
    return {
        **clean_env(),
        "APP_ENV": "production",
        "FORCE_HTTPS": "false",
        "DATABASE_URL": backends.database_url,
        "REDIS_URL": backends.redis_url,
        "SECRET_KEY": secrets.token_hex(24),
        "MFA_ENCRYPTION_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        # The limiter stays in the request path (its Redis round trip is part of the cost) but
        # never rejects: not pages before login, nor logged-in requests (limited per account),
        # nor the log-in form posts (limited per address).
        "RATE_LIMIT_ANONYMOUS": "100000000 per minute",
        "RATE_LIMIT_AUTHENTICATED": "100000000 per minute",
        "RATE_LIMIT_AUTH_ENDPOINTS": "100000000 per minute",
        "INSTANCE_PATH": str(instance_path),
    }


def prepare(instance_path: Path, backends: Backends = BENCH) -> dict[str, str]:
    """Reset the backends and migrate; return the environment the platform runs with."""
    env = platform_env(instance_path, backends)
    reset_database(backends)
    flush_redis(backends)
    migrate(env)
    return env


def reset_database(backends: Backends = BENCH) -> None:
    name = backends.database_name
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as connection:
            database, role = sql.Identifier(name), sql.Identifier(backends.app_role)
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                database))
            ensure_role(connection, backends.app_role)
            connection.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(database, role))
        with psycopg.connect(backends.owner_url, autocommit=True,
                             connect_timeout=3) as connection:
            connection.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(role))
    except psycopg.Error as error:
        raise SetupError(f"cannot reset database {name} via {PG_ADMIN_URL}: {error}") from None


def ensure_role(connection: psycopg.Connection, name: str) -> None:
    """The application's plain role (its password is its name), made if it is not there."""
    if not connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
        connection.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} NOSUPERUSER NOBYPASSRLS")
                           .format(sql.Identifier(name), sql.Literal(name)))


def clear_tables(*tables: str) -> None:
    """Empty the tables (in this order) and vacuum them: a measurement never sees another's rows,
    nor the dead tuples they left behind."""
    try:
        with psycopg.connect(BENCH.owner_url, autocommit=True, connect_timeout=3) as connection:
            # The audit tables are append-only by triggers: a superuser's session skips them.
            connection.execute("SET session_replication_role = replica")
            for table in tables:
                connection.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))
            for table in tables:
                connection.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(table)))
    except psycopg.Error as error:
        raise SetupError(f"cannot clear {', '.join(tables)} in {DATABASE_NAME}: {error}") from None


def flush_redis(backends: Backends = BENCH) -> None:
    # Stale rate-limit counters or queued messages from an earlier run would skew this one.
    try:
        redis.Redis.from_url(backends.redis_url, socket_connect_timeout=2).flushdb()
    except redis.RedisError as error:
        raise SetupError(f"cannot flush {backends.redis_url}: {error}") from None


def migrate(env: dict[str, str]) -> None:
    done = subprocess.run([str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise SetupError(f"migrations failed ({done.returncode}):\n{done.stderr}{done.stdout}")


def count_every_practice(engine: Any, table: str) -> int:
    """Rows of `table` as the platform's role sees them with every practice in view: row-level
    security shows it none of a practice's rows without `app.all_tenants`."""
    import sqlalchemy as sa

    with engine.begin() as connection:
        connection.execute(sa.text("SELECT set_config('app.all_tenants', 'on', true)"))
        return int(connection.scalar(sa.text(f"SELECT count(*) FROM {table}")) or 0)
