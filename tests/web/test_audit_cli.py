"""`flask audit export`: a large export from the command line, with its progress, whose file
matches the table row for row and hash for hash."""

from __future__ import annotations

import csv
import json
import uuid

import pytest
import sqlalchemy as sa

from core import clock
from core.audit import writer
from core.audit.chain import chain_of
from core.audit.models import AuditEntry
from core.scoping import TenantContext, system_session
from core.uow import UnitOfWork

ROWS = 100_000
PRACTICE = uuid.UUID("00000000-0000-4000-8000-0000000c11e0")


def _fill(db, rows: int, tenant_id: uuid.UUID | None = PRACTICE) -> None:
    """Entries chained by the writer's own code, without going through the outbox."""
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        for start in range(0, rows, 5000):
            writer.append(uow.session, [
                {"chain_id": chain_of(tenant_id), "event_id": uuid.uuid4(),
                 "type": "TEST_EMAIL_REQUESTED", "outcome": "success", "tenant_id": tenant_id,
                 "actor_account_id": None, "subject": "mail:test", "ip": "192.0.2.10",
                 "user_agent": "bench/1", "request_id": None, "metadata": {"n": n},
                 "occurred_at": clock.now()}
                for n in range(start, min(start + 5000, rows))])
            uow.commit()


@pytest.mark.integration
def test_a_100000_row_export_shows_progress_and_matches_the_table(app, db, tmp_path):
    _fill(db, ROWS)
    _fill(db, 10, tenant_id=None)  # another chain, left out by --tenant
    out = tmp_path / "audit.csv"
    result = app.test_cli_runner().invoke(args=[
        "audit", "export", "--tenant", str(PRACTICE), "--format", "csv", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "rows/s" in result.stderr and "ETA" in result.stderr
    assert f"{ROWS:,} / {ROWS:,} entries (100%)" in result.stderr
    assert f"{ROWS:,} entries written to {out}" in result.stdout
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    with system_session(db) as session:
        hashes = {bytes(h).hex() for h in session.execute(sa.select(AuditEntry.hash).where(
            AuditEntry.tenant_id == PRACTICE)).scalars()}
    assert len(rows) == ROWS == len(hashes)
    assert {row["hash"] for row in rows} == hashes
    assert [int(row["seq"]) for row in rows] == list(range(1, ROWS + 1))
    assert not list(tmp_path.glob(".*partial"))


def test_the_cli_export_is_itself_audited(app, db, tmp_path):
    _fill(db, 3)
    out = tmp_path / "audit.jsonl"
    result = app.test_cli_runner().invoke(args=[
        "audit", "export", "--since", "2000-01-01", "--format", "jsonl", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["metadata"]["n"] for line in out.read_text().splitlines()] == [
        0, 1, 2]
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        writer.write_pending(uow)
    with system_session(db) as session:
        exported = session.execute(sa.select(AuditEntry).where(
            AuditEntry.type == "AUDIT_EXPORTED")).scalar_one()
    assert exported.details["via"] == "cli" and exported.details["rows"] == 3
    assert exported.details["filters"]["since"].startswith("2000-01-01")
