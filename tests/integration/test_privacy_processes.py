"""A person's export and erasure through a real dramatiq worker process on the Redis broker."""

from __future__ import annotations

import zipfile
from datetime import timedelta

import pytest
import sqlalchemy as sa

from core import clock
from core.audit import verify, writer
from core.audit.models import AuditEntry
from core.identity.directory import accounts_of, identity_by_email
from core.identity.sessions import SessionView
from core.privacy import erasure
from core.privacy import export as exports
from core.privacy.models import PrivacyRequest
from core.scoping import TenantContext, system_session
from core.uow import UnitOfWork
from tests.integration.test_audit_processes import _env, _side
from tests.support.factories import practice
from tests.support.flows import PASSWORD
from tests.support.processes import dramatiq_worker, wait_until

pytestmark = pytest.mark.integration


def _status(db, request_id) -> str | None:
    with system_session(db) as session:
        found = session.get(PrivacyRequest, request_id)
        return found.status if found else None


def _view(db, email: str) -> SessionView:
    with system_session(db) as session:
        identity = identity_by_email(session, email)
        [account] = accounts_of(session, identity.id)
        now = clock.now().isoformat()
        return SessionView(id_hash="x" * 64, identity_id=str(identity.id), email=identity.email,
                           email_verified=True, account_id=str(account.id), role=account.role,
                           display_name=account.display_name, tenant_id=str(account.tenant_id),
                           tenant_name=None, tenant_slug=None, created_at=now,
                           last_seen_at=now, accounts=())


def test_a_worker_process_builds_the_copy_then_erases_the_person(
        db, database_url, instance_dir, redis_url, tmp_path, app):
    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    side = _side(db, database_url, instance_dir, redis_url)
    view = _view(db, harbour.client_email)
    with UnitOfWork(side.services.db, fast_path=side.fast_path,
                    tenant=TenantContext.of(harbour.tenant.id)) as uow:
        asked = exports.request_export(uow, view, password=PASSWORD)
        uow.commit()
    env = _env(database_url, redis_url, tmp_path)
    worker = dramatiq_worker(env, tmp_path / "worker.log", threads=2)
    try:
        wait_until(lambda: _status(db, asked.id) == "ready", 120, "the copy built")
        path = tmp_path / "files" / "privacy-exports" / f"{asked.id}.zip"
        with zipfile.ZipFile(path) as archive:
            assert harbour.client_email in archive.read("identities.json").decode()

        with UnitOfWork(side.services.db, fast_path=side.fast_path,
                        tenant=TenantContext.of(harbour.tenant.id)) as uow:
            scheduled = erasure.request_erasure(uow, view, password=PASSWORD)
            uow.commit()
        # The cooling-off period, passed (the worker process keeps the real clock).
        with system_session(db) as session:
            session.get(PrivacyRequest, scheduled.id).scheduled_for = clock.now() - timedelta(
                seconds=1)
            session.commit()
        side.enqueue("run_privacy_jobs")
        wait_until(lambda: _status(db, scheduled.id) == "completed", 120, "the erasure done")
    finally:
        worker.stop()
    assert not path.exists()
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        while writer.write_pending(uow):
            pass
        assert identity_by_email(uow.session, harbour.client_email) is None
        assert uow.session.execute(sa.select(sa.func.count()).select_from(AuditEntry).where(
            AuditEntry.actor_account_id == harbour.client.id)).scalar_one() == 0
        report = verify.verify(uow.session, app.extensions["settings"].audit_key)
    assert report.ok, report.problems
    assert report.erased > 0
