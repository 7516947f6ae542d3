"""The audit log with real worker processes, SIGKILLed mid-flight.

* Mid-delivery to the external sink: the sink still receives every entry, in order per chain;
  anything it receives twice is the same record again (same id, same hash).
* Mid-export: the export completes once (one file, one AUDIT_EXPORTED, one notification), and
  the file holds every entry.
"""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest
import sqlalchemy as sa

from assembly import worker_side_of
from core.audit import exports
from core.audit.models import AuditEntry, AuditExport
from core.audit.viewer import Filters
from core.events.models import Event
from core.events.types import EventType
from core.notifications.models import Notification
from core.scoping import TenantContext, system_session
from core.uow import UnitOfWork
from tests.conftest import make_settings
from tests.support.apps import make_app
from tests.support.audit import write_entries
from tests.support.audit_sink import HttpSinkReceiver
from tests.support.factories import practice
from tests.support.processes import dramatiq_worker, platform_env, wait_until

pytestmark = pytest.mark.integration

SECRET = "audit-sink-secret-0123456789"
CHAINS = [uuid.UUID(int=0), uuid.uuid4(), uuid.uuid4()]


def _env(database_url, redis_url, instance, **extra):
    return platform_env(
        DATABASE_URL=database_url, REDIS_URL=redis_url, INSTANCE_PATH=str(instance),
        LOG_LEVEL="WARNING", BROKER_HEARTBEAT_TIMEOUT_MS="2000",
        BROKER_MAINTENANCE_CHANCE="200000", **extra)


def _side(db, database_url, instance_dir, redis_url):
    settings = make_settings(database_url, instance_dir, redis_url=redis_url,
                             broker_url=redis_url)
    side = worker_side_of(make_app(settings, db))
    side.broker.flush_all()
    return side


def _in_order_per_chain(records: list[dict]) -> None:
    """Each record is either the next of its chain or one the sink already had, unchanged."""
    seen: dict[str, dict] = {}
    reached: dict[str, int] = {}
    for record in records:
        chain, seq = record["chain_id"], record["seq"]
        if record["id"] in seen:
            assert seen[record["id"]] == record, "a record came twice, different"
            assert seq <= reached[chain]
            continue
        assert seq == reached.get(chain, 0) + 1, f"chain {chain}: seq {seq} out of order"
        seen[record["id"]] = record
        reached[chain] = seq


def test_the_sink_gets_every_entry_in_order_though_the_worker_is_killed(
        db, database_url, instance_dir, redis_url, tmp_path):
    side = _side(db, database_url, instance_dir, redis_url)
    receiver = HttpSinkReceiver(SECRET, delay=0.05).start()
    env = _env(database_url, redis_url, tmp_path, AUDIT_SINK_URL=receiver.url,
               AUDIT_SINK_SECRET=SECRET)
    log = tmp_path / "worker.log"
    worker = dramatiq_worker(env, log, threads=4)
    total = 1500
    try:
        for start in range(0, total, 50):
            with side.runtime.unit_of_work() as uow:
                for n in range(start, start + 50):
                    uow.record(EventType.LOGOUT, tenant_id=CHAINS[n % 3] if n % 3 else None,
                               payload={"n": n})
                uow.commit()
        wait_until(lambda: len(receiver.entries()) >= 300, 120, "a first part at the sink")
        worker.kill()
        worker = dramatiq_worker(env, log, threads=4)
        wait_until(lambda: len({r["id"] for r in receiver.entries()}) >= total, 180,
                   "every entry at the sink")
    finally:
        worker.stop()
        receiver.stop()
    entries = receiver.entries()
    with db.session() as session:
        event_ids = {str(i) for i in session.execute(sa.select(Event.id)).scalars()}
    assert {r["id"] for r in entries} == event_ids
    assert receiver.invalid == 0
    _in_order_per_chain(entries)
    print(f"\n{len(entries) - total} record(s) sent twice after one SIGKILL")


def test_an_export_killed_half_way_completes_once(
        db, database_url, instance_dir, redis_url, tmp_path, app):
    rows = 60_000
    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    write_entries(db, rows, tenant_id=harbour.tenant.id)
    side = _side(db, database_url, instance_dir, redis_url)
    folder = tmp_path / "files" / "audit-exports"
    with UnitOfWork(side.services.db, fast_path=side.fast_path,
                    tenant=TenantContext.system()) as uow:
        export = exports.request_export(
            uow, exports.Scope(harbour.therapist.id, harbour.tenant.id), Filters(), "jsonl")
        uow.commit()
    env = _env(database_url, redis_url, tmp_path)
    log = tmp_path / "worker.log"
    worker = dramatiq_worker(env, log, threads=2)
    try:
        wait_until(lambda: folder.is_dir() and any(folder.glob(".*")), 120,
                   "the export half-written")
        worker.kill()
        assert not (folder / f"{export.id}.jsonl").exists()
        worker = dramatiq_worker(env, log, threads=2)
        wait_until(lambda: _status(db, export.id) == "done", 180, "the export done")
    finally:
        worker.stop()
    path = folder / f"{export.id}.jsonl"
    lines = path.read_bytes().splitlines()
    with system_session(db) as session:
        finished = session.get(AuditExport, export.id)
        in_practice = session.execute(sa.select(sa.func.count()).where(
            AuditEntry.tenant_id == harbour.tenant.id,
            AuditEntry.created_at <= export.created_at)).scalar_one()
        exported = session.execute(sa.select(Event).where(
            Event.type == "AUDIT_EXPORTED")).scalars().all()
        notes = session.execute(sa.select(Notification).where(
            Notification.kind == exports.EXPORT_READY)).scalars().all()
    assert len(lines) == finished.rows == in_practice >= rows
    assert hashlib.sha256(path.read_bytes()).hexdigest() == finished.sha256
    assert {json.loads(line)["practice_id"] for line in lines} == {str(harbour.tenant.id)}
    assert len(exported) == 1 and exported[0].payload["export_id"] == str(export.id)
    assert len(notes) == 1 and notes[0].account_id == harbour.therapist.id


def _status(db, export_id) -> str | None:
    with system_session(db) as session:
        found = session.get(AuditExport, export_id)
        return found.status if found else None
