"""A wrong setting or an unreachable database is one clear line and a non-zero exit."""

from __future__ import annotations

import sys

import pytest

from tests.conftest import free_port
from tests.support.processes import BIN, platform_env, run

SECRET = "x" * 48


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got:\n{stderr}"
    assert "Traceback" not in stderr
    return lines[0]


COMMANDS = {
    "web (gunicorn)": [str(BIN / "gunicorn"), "wsgi:app", "--bind", "127.0.0.1:0"],
    "release (flask db upgrade)": [str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"],
    "scheduler": [sys.executable, "-m", "scheduler"],
    "worker": [str(BIN / "dramatiq"), "workers.boot", "--processes", "1", "--threads", "1"],
}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_production_without_secret_refuses_to_start(name: str, tmp_path) -> None:
    env = platform_env(APP_ENV="production", DATABASE_URL="postgresql://u@127.0.0.1/x",
                       REDIS_URL="redis://127.0.0.1:6379/0", SECRET_KEY=None,
                       INSTANCE_PATH=str(tmp_path))
    result = run(COMMANDS[name], env)
    assert result.returncode != 0
    line = _one_line(result.stderr if name != "worker" else _worker_stderr(result))
    assert "needs SECRET_KEY" in line


def test_production_with_sqlite_refuses_to_start(tmp_path) -> None:
    env = platform_env(APP_ENV="production", REDIS_URL="redis://127.0.0.1:6379/0",
                       SECRET_KEY=SECRET, INSTANCE_PATH=str(tmp_path))
    result = run(COMMANDS["web (gunicorn)"], env)
    assert result.returncode != 0
    assert "not SQLite" in _one_line(result.stderr)


@pytest.mark.parametrize("name", ["web (gunicorn)", "release (flask db upgrade)"])
def test_postgres_on_a_closed_port_is_one_line(name: str, tmp_path) -> None:
    port = free_port()  # nothing listens there
    env = platform_env(DATABASE_URL=f"postgresql://app:s3cret@127.0.0.1:{port}/platform",
                       INSTANCE_PATH=str(tmp_path))
    result = run(COMMANDS[name], env)
    assert result.returncode != 0
    line = _one_line(result.stderr)
    assert "cannot reach the database" in line and str(port) in line
    assert "s3cret" not in result.stderr  # the password is never printed


def _worker_stderr(result) -> str:
    # dramatiq's launcher adds its own lines around a failed import; ours must be among them
    # as a single line, with no traceback.
    ours = [line for line in result.stderr.splitlines() if line.startswith("worker:")]
    assert "Traceback" not in result.stderr, result.stderr
    return "\n".join(ours)


@pytest.mark.parametrize("name", ["web (gunicorn)", "scheduler", "worker"])
def test_production_refuses_a_database_role_that_skips_row_level_security(
        name: str, admin_database_url: str, tmp_path) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(admin_database_url)
    with engine.connect() as connection:
        is_superuser = connection.execute(sa.text(
            "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user")).scalar()
    engine.dispose()
    if not is_superuser:
        pytest.skip("TEST_DATABASE_URL's role is not a superuser here")
    env = platform_env(APP_ENV="production", DATABASE_URL=admin_database_url,
                       REDIS_URL="redis://127.0.0.1:6379/0", SECRET_KEY=SECRET,
                       MFA_ENCRYPTION_KEY="bW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW0=",
                       INSTANCE_PATH=str(tmp_path))
    result = run(COMMANDS[name], env)
    assert result.returncode != 0
    line = _one_line(result.stderr if name != "worker" else _worker_stderr(result))
    assert "superuser" in line and "row-level security" in line
    assert "10-app-role.sql" in line
