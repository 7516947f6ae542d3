"""What the viewer shows beside the entries: names for ids, and the log's integrity status."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core import clock
from core.audit.models import AuditCheckpoint, AuditEntry, AuditVerification
from core.audit.sink import SinkLag, lag
from core.audit.verify import latest
from core.config import Settings
from core.identity.models import Account
from core.tenancy.models import Tenant


def names_for(session: Session, entries: Sequence[AuditEntry]
              ) -> tuple[dict[uuid.UUID, str], dict[uuid.UUID, Account]]:
    """Practice names and actor accounts for the entries on a page (whatever the session may
    see of them: a practice owner sees the accounts of their own practice)."""
    tenant_ids = {e.tenant_id for e in entries if e.tenant_id}
    actor_ids = {e.actor_account_id for e in entries if e.actor_account_id}
    practices = {row.id: row.name for row in session.execute(
        sa.select(Tenant.id, Tenant.name).where(Tenant.id.in_(tenant_ids)))} if tenant_ids else {}
    actors = {account.id: account for account in session.execute(
        sa.select(Account).where(Account.id.in_(actor_ids))).scalars()} if actor_ids else {}
    return practices, actors


@dataclass(frozen=True)
class IntegrityStatus:
    verification: AuditVerification | None
    checkpoint_at: datetime | None
    sink: SinkLag | None

    @property
    def verified_age_hours(self) -> float | None:
        if self.verification is None:
            return None
        return (clock.now() - self.verification.finished_at).total_seconds() / 3600


def status(session: Session, settings: Settings) -> IntegrityStatus:
    checkpoint_at = session.execute(sa.select(sa.func.max(AuditCheckpoint.created_at))).scalar()
    return IntegrityStatus(verification=latest(session), checkpoint_at=checkpoint_at,
                           sink=lag(session) if settings.audit_sink_url else None)
