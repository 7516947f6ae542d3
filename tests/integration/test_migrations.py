"""Alembic owns the schema: migrations apply, roll back and re-apply on SQLite and PostgreSQL,
and the models never drift from them."""

from __future__ import annotations

import json
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


def test_audit_entries_written_before_chains_are_chained_by_the_upgrade(scratch_url: str) -> None:
    """0008 chains what the log held before it, in the order it was written; new entries go on
    from there; the downgrade keeps every entry."""
    from datetime import UTC, datetime, timedelta

    from core.audit import writer
    from core.audit.verify import verify
    from core.db import Database
    from core.events.types import EventType
    from core.scoping import TenantContext
    from core.uow import UnitOfWork

    config = _config(scratch_url)
    command.upgrade(config, "0006_plans")
    practice = uuid.uuid4()
    postgresql = scratch_url.startswith("postgresql")
    engine = sa.create_engine(scratch_url)
    with engine.begin() as connection:
        if postgresql:
            connection.execute(sa.text("SELECT set_config('app.all_tenants', 'on', true)"))
        for n in range(25):
            tenant = practice if n % 2 else None
            connection.execute(sa.text(
                "INSERT INTO audit_entries (event_id, type, tenant_id, subject, ip, user_agent, "
                "metadata, occurred_at, created_at) VALUES (:e, 'USER_LOGIN', :t, 'identity:x', "
                "'192.0.2.1', 'agent/1', :m, :at, :at)"),
                {"e": str(uuid.uuid4()) if postgresql else uuid.uuid4().hex,
                 "t": (str(tenant) if postgresql else tenant.hex) if tenant else None,
                 "m": json.dumps({"n": n}),
                 "at": datetime(2026, 10, 1, tzinfo=UTC) + timedelta(minutes=n)})
    engine.dispose()
    command.upgrade(config, "head")
    db = Database(scratch_url)
    try:
        with UnitOfWork(db, tenant=TenantContext.system()) as uow:
            uow.record(EventType.LOGOUT, tenant_id=practice)
            uow.commit()
            writer.write_pending(uow)
            report = verify(uow.session, b"any key")
            seqs = uow.session.execute(sa.text(
                "SELECT seq FROM audit_entries WHERE tenant_id IS NOT NULL ORDER BY id"
            )).scalars().all()
    finally:
        db.dispose()
    assert report.ok and (report.chains, report.entries) == (2, 26)
    assert seqs == list(range(1, 14))
    command.downgrade(config, "0006_plans")
    engine = sa.create_engine(scratch_url)
    with engine.begin() as connection:
        if postgresql:
            connection.execute(sa.text("SELECT set_config('app.all_tenants', 'on', true)"))
        assert connection.execute(sa.text("SELECT count(*) FROM audit_entries")).scalar() == 26
    engine.dispose()
