"""Retention: months past AUDIT_RETENTION_MONTHS are archived to the file store, then dropped
(a partition on PostgreSQL, rows on SQLite); the log still verifies afterwards."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from core import clock
from core.adapters.files import MemoryFileStore
from core.audit import retention
from core.audit.models import AuditArchive, AuditEntry
from core.scoping import TenantContext, system_session
from core.uow import UnitOfWork
from tests.support.audit import chain_entries, write_entries

PRACTICE = uuid.UUID("00000000-0000-4000-8000-00000000bee5")
LONG_AGO = datetime(2018, 3, 10, 9, 30, tzinfo=UTC)


def _at(moment, fn, *args, **kwargs):
    saved = clock.now
    clock.now = lambda: moment
    try:
        return fn(*args, **kwargs)
    finally:
        clock.now = saved


@pytest.fixture
def services(app):
    services = app.extensions["services"]
    services.files = MemoryFileStore()
    return services


def _apply(db, services):
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        return retention.apply(uow, services)


def test_an_expired_month_is_archived_then_dropped_and_the_log_still_verifies(
        app, db, services):
    _at(LONG_AGO, write_entries, db, 4, tenant_id=PRACTICE)
    _at(LONG_AGO, write_entries, db, 2)
    write_entries(db, 3, tenant_id=PRACTICE)
    dropped_hashes = {e.hash.hex() for e in chain_entries(db, PRACTICE)[:4]}

    report = _apply(db, services)

    assert report.archived == report.dropped == ["2018-03"]
    archive_lines = b"".join(services.files.read("audit-archive/2018-03.jsonl")).splitlines()
    archived = [json.loads(line) for line in archive_lines]
    assert len(archived) == 6 and {r["hash"] for r in archived} >= dropped_hashes
    assert [e.seq for e in chain_entries(db, PRACTICE)] == [5, 6, 7]
    assert chain_entries(db, None) == []
    with system_session(db) as session:
        assert session.get(AuditArchive, "2018-03").dropped_at is not None
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert _apply(db, services).dropped == []  # nothing left to do
    write_entries(db, 1)  # a chain dropped whole goes on where it stopped
    assert [(e.seq, e.type) for e in chain_entries(db, None)] == [
        (3, "AUDIT_MONTH_DROPPED"), (4, "TEST_EMAIL_REQUESTED")]
    assert app.test_cli_runner().invoke(args=["audit", "verify"]).exit_code == 0


def test_nothing_is_dropped_when_the_archive_cannot_be_written(app, db, services):
    _at(LONG_AGO, write_entries, db, 2, tenant_id=PRACTICE)

    class Broken(MemoryFileStore):
        def writer(self, key):
            raise OSError("the file store is away")

    services.files = Broken()
    with pytest.raises(OSError):
        _apply(db, services)
    assert len(chain_entries(db, PRACTICE)) == 2


def test_the_database_refuses_to_drop_a_month_within_retention_or_unarchived(db):
    if db.dialect != "postgresql":
        pytest.skip("partitions are PostgreSQL's")
    write_entries(db, 1, tenant_id=PRACTICE)
    with db.engine.connect() as connection:
        with pytest.raises(sa.exc.DBAPIError, match="within retention"):
            connection.execute(sa.text("SELECT audit_drop_partition(now(), 72)"))
        connection.rollback()
        with pytest.raises(sa.exc.DBAPIError, match="below 12 months"):
            connection.execute(sa.text("SELECT audit_drop_partition(now(), 0)"))
        connection.rollback()
        with pytest.raises(sa.exc.DBAPIError, match="has not been archived"):
            connection.execute(sa.text(
                "SELECT audit_drop_partition('2018-03-01'::timestamptz, 72)"))
    with system_session(db) as session:
        assert session.execute(sa.select(sa.func.count()).select_from(AuditEntry)).scalar() == 1


def test_partitions_are_kept_ahead(db, services):
    if db.dialect != "postgresql":
        pytest.skip("partitions are PostgreSQL's")
    _apply(db, services)
    with system_session(db) as session:
        from core.audit.partitions import add_months, existing_months, month_start

        months = existing_months(session)
    assert add_months(month_start(clock.now()), 3) in months


def test_the_daily_run_removes_partial_files_of_killed_writers(app, db, tmp_path):
    import os

    from core.adapters.files import LocalFileStore

    services = app.extensions["services"]
    services.files = LocalFileStore(tmp_path)
    folder = tmp_path / "audit-exports"
    folder.mkdir()
    abandoned = folder / ".export-1.csv.k2j4h1x0.partial"
    abandoned.write_bytes(b"half an export")
    long_ago = (clock.now() - retention.ABANDONED_AFTER).timestamp() - 60
    os.utime(abandoned, (long_ago, long_ago))
    being_written = folder / ".export-2.csv.p9q8r7s6.partial"
    being_written.write_bytes(b"an export under way")
    (folder / "export-0.csv").write_bytes(b"a finished export")

    report = _apply(db, services)

    assert report.abandoned_files == 1
    assert sorted(p.name for p in folder.iterdir()) == [
        ".export-2.csv.p9q8r7s6.partial", "export-0.csv"]
