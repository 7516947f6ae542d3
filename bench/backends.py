"""The platform under test: a fresh PostgreSQL database, a flushed Redis database, its environment.

Settings are production's (PostgreSQL, Redis broker, limiter on Redis, JSON request log lines)
except FORCE_HTTPS=false: wrk speaks plain HTTP on loopback, where a real deployment has a
TLS-terminating proxy in front.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import psycopg
import redis
from psycopg import sql

from bench.servers import BIN, ROOT

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE_NAME = "bench_platform"
# The platform connects as a plain role, as production must (a superuser would skip row-level
# security, and with it part of the cost being measured); it owns the bench database.
APP_ROLE = "bench_platform_app"
DATABASE_URL = (f"postgresql+psycopg://{APP_ROLE}:{APP_ROLE}@127.0.0.1:5432/{DATABASE_NAME}")
_PG_BENCH_URL = f"postgresql://postgres@127.0.0.1:5432/{DATABASE_NAME}"
REDIS_URL = "redis://127.0.0.1:6379/14"
# What the servers inherit from our shell; nothing else, so a developer's BROKER_URL, WEBHOOK_URL
# or GUNICORN_CMD_ARGS cannot change what is measured.
PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")


class SetupError(Exception):
    """PostgreSQL, Redis or the migrations are not ready for a run."""


def clean_env() -> dict[str, str]:
    return {name: os.environ[name] for name in PASSTHROUGH if name in os.environ}


def platform_env(instance_path: Path) -> dict[str, str]:
    return {
        **clean_env(),
        "APP_ENV": "production",
        "FORCE_HTTPS": "false",
        "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": REDIS_URL,
        "SECRET_KEY": secrets.token_hex(24),
        # The limiter stays in the request path (its Redis round trip is part of the cost) but
        # never rejects: not pages before login, nor logged-in requests (limited per account),
        # nor the log-in form posts (limited per address).
        "RATE_LIMIT_ANONYMOUS": "100000000 per minute",
        "RATE_LIMIT_AUTHENTICATED": "100000000 per minute",
        "RATE_LIMIT_AUTH_ENDPOINTS": "100000000 per minute",
        "INSTANCE_PATH": str(instance_path),
    }


def prepare(instance_path: Path) -> dict[str, str]:
    """Reset the backends and migrate; return the environment the platform runs with."""
    env = platform_env(instance_path)
    _reset_database()
    flush_redis()
    _migrate(env)
    return env


def _reset_database() -> None:
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as connection:
            name, role = sql.Identifier(DATABASE_NAME), sql.Identifier(APP_ROLE)
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
            if not connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                                      (APP_ROLE,)).fetchone():
                connection.execute(sql.SQL(
                    "CREATE ROLE {} LOGIN PASSWORD {} NOSUPERUSER NOBYPASSRLS").format(
                        role, sql.Literal(APP_ROLE)))
            connection.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(name, role))
        with psycopg.connect(_PG_BENCH_URL, autocommit=True, connect_timeout=3) as connection:
            connection.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(role))
    except psycopg.Error as error:
        raise SetupError(f"cannot reset database {DATABASE_NAME} via {PG_ADMIN_URL}: {error}"
                         ) from None


def clear_tables(*tables: str) -> None:
    """Empty the tables (in this order) and vacuum them: a measurement never sees another's rows,
    nor the dead tuples they left behind."""
    try:
        with psycopg.connect(_PG_BENCH_URL, autocommit=True, connect_timeout=3) as connection:
            for table in tables:
                connection.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))
            for table in tables:
                connection.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(table)))
    except psycopg.Error as error:
        raise SetupError(f"cannot clear {', '.join(tables)} in {DATABASE_NAME}: {error}") from None


def flush_redis() -> None:
    # Stale rate-limit counters or queued messages from an earlier run would skew this one.
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).flushdb()
    except redis.RedisError as error:
        raise SetupError(f"cannot flush {REDIS_URL}: {error}") from None


def _migrate(env: dict[str, str]) -> None:
    done = subprocess.run([str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise SetupError(f"migrations failed ({done.returncode}):\n{done.stderr}{done.stdout}")
