"""The audit log's integrity as operators and admins see it: verification runs and their alert.

A failed verification records AUDIT_VERIFY_FAILED, whose handler alerts every platform admin
(a live notification); the admin page shows the latest run.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import asdict

import sqlalchemy as sa

from core import clock
from core.audit.models import AuditCheckpoint
from core.audit.verify import Report, latest, record, verify
from core.events.types import EventType
from core.identity.models import Account, Role
from core.notifications.service import notify
from core.pipeline.handlers import HandlerContext, handler
from core.uow import UnitOfWork

log = logging.getLogger(__name__)

INTEGRITY_ALERT = "audit_integrity"


def verify_and_record(uow: UnitOfWork, key: bytes, *, tenant_id: uuid.UUID | None = None,
                      kept_elsewhere: Sequence[AuditCheckpoint] = ()) -> Report:
    started = clock.now()
    report = verify(uow.session, key, tenant_id=tenant_id, kept_elsewhere=kept_elsewhere)
    record(uow.session, report, tenant_id=tenant_id, started_at=started)
    if not report.ok:
        first = report.problems[0]
        log.error("audit log verification failed: chain %s %s (%d problem(s))",
                  first.chain_id, first.describe(), len(report.problems))
        uow.record(EventType.AUDIT_VERIFY_FAILED, tenant_id=None, subject="audit:log",
                   payload={"problems": [asdict(p) for p in report.problems[:5]],
                            "count": len(report.problems), "chains": report.chains,
                            "entries": report.entries})
    return report


@handler(name="alert_admins_of_audit_failure", queue="notifications",
         events={EventType.AUDIT_VERIFY_FAILED})
def alert_admins_of_audit_failure(ctx: HandlerContext) -> None:
    session = ctx.uow.session
    admins = session.execute(
        sa.select(Account.id).where(Account.role == Role.ADMIN)).scalars().all()
    first = (ctx.event.payload.get("problems") or [{}])[0]
    for account_id in admins:
        notify(ctx.uow, ctx.services.notifications, account_id=account_id, tenant_id=None,
               kind=INTEGRITY_ALERT, title="Audit log verification failed",
               body=f"Chain {first.get('chain_id', '?')}, seq {first.get('seq', '?')}: "
                    f"{first.get('kind', '?')} — {first.get('detail', '')}"[:2000],
               link="/admin/audit", source_event_id=uuid.uuid5(ctx.event.id, str(account_id)))


__all__ = ["alert_admins_of_audit_failure", "latest", "verify_and_record"]
