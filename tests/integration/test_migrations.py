"""Alembic owns the schema: migrations apply, roll back and re-apply on SQLite and PostgreSQL,
and the models never drift from them."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from core.config import normalise_database_url
from tests.conftest import ROOT, TEST_DATABASE_URL

pytestmark = pytest.mark.integration


def _config(url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["database_url"] = url
    config.attributes["configure_logging"] = False
    return config


@pytest.fixture(params=["sqlite", "postgresql"])
def scratch_url(request, tmp_path: Path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'scratch.db'}"
        return
    if not TEST_DATABASE_URL:
        pytest.skip("needs TEST_DATABASE_URL (CI always sets it)")
    admin_url = normalise_database_url(TEST_DATABASE_URL)
    name = f"migrations_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield str(sa.engine.make_url(admin_url).set(database=name).render_as_string(
        hide_password=False))
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade_and_no_drift(scratch_url: str) -> None:
    config = _config(scratch_url)
    command.upgrade(config, "head")
    assert {"events", "handler_runs", "dead_letters", "audit_entries"} <= _tables(scratch_url)
    command.check(config)  # raises if the models and migrations disagree
    command.downgrade(config, "base")
    assert _tables(scratch_url) <= {"alembic_version"}
    command.upgrade(config, "head")
    command.check(config)


def test_migration_history_is_linear() -> None:
    script = ScriptDirectory.from_config(_config("sqlite://"))
    assert len(script.get_heads()) == 1, "two migration heads: merge them"
