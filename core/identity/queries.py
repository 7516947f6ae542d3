"""Read models for the dashboards. Tenant-owned queries carry no tenant filter of their own:
the session's tenant context scopes them (and row-level security backs that up)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core import clock
from core.errors import NotFound
from core.identity.models import Account, Identity, Invitation, Role
from core.tenancy.guard import owned
from core.tenancy.models import Tenant


def clients(session: Session, *, tenant_id: uuid.UUID | None = None) -> Sequence[Account]:
    """The practice's clients (`tenant_id`: one practice, for an admin who sees them all)."""
    return _members(session, Role.CLIENT, tenant_id)


def therapists(session: Session, *, tenant_id: uuid.UUID | None = None) -> Sequence[Account]:
    return _members(session, Role.THERAPIST, tenant_id)


def _members(session: Session, role: Role, tenant_id: uuid.UUID | None) -> Sequence[Account]:
    query = sa.select(Account).where(Account.role == role)
    if tenant_id is not None:
        query = query.where(Account.tenant_id == tenant_id)
    return session.execute(query.order_by(Account.display_name)).scalars().all()


def client_of_practice(session: Session, account_id: uuid.UUID) -> Account:
    """One of the practice's clients (another practice's account is not found)."""
    account = owned(session, Account, account_id)
    if account.role != Role.CLIENT:
        raise NotFound("There is nothing at this address.")
    return account


def invitations(session: Session, *, limit: int = 50) -> Sequence[Invitation]:
    return session.execute(
        sa.select(Invitation).order_by(Invitation.created_at.desc()).limit(limit)
    ).scalars().all()




def locked_identities(session: Session) -> Sequence[Identity]:
    return session.execute(
        sa.select(Identity).where(Identity.locked_until > clock.now())
        .order_by(Identity.locked_until.desc())
    ).scalars().all()


@dataclass(frozen=True)
class PracticeRow:
    tenant: Tenant
    therapists: int
    clients: int


def practices(session: Session) -> list[PracticeRow]:
    """Every practice with its head counts (admins: the session sees all tenants)."""
    counts = dict(
        ((tenant_id, role), n) for tenant_id, role, n in session.execute(
            sa.select(Account.tenant_id, Account.role, sa.func.count())
            .where(Account.tenant_id.is_not(None))
            .group_by(Account.tenant_id, Account.role)
        ).all()
    )
    tenants = session.execute(sa.select(Tenant).order_by(Tenant.created_at.desc())).scalars()
    return [PracticeRow(t, counts.get((t.id, "therapist"), 0), counts.get((t.id, "client"), 0))
            for t in tenants]


