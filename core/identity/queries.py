"""Read models for the dashboards. Tenant-owned queries carry no tenant filter of their own:
the session's tenant context scopes them (and row-level security backs that up)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core import clock
from core.caching import PRACTICE_HOMES, CachedRegions, CacheKey
from core.errors import NotFound
from core.identity.models import Account, Identity, Invitation, Role
from core.scoping import within_tenant
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


# -- a practice's dashboard, cached ------------------------------------------------------------

@dataclass(frozen=True)
class PracticeSummary:
    id: uuid.UUID
    name: str
    slug: str
    status: str


@dataclass(frozen=True)
class Member:
    id: uuid.UUID
    display_name: str
    created_at: datetime


@dataclass(frozen=True)
class InvitationLine:
    id: uuid.UUID
    email: str
    created_at: datetime
    accepted_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class PracticeHome:
    """What a practice's dashboards show: the practice, its therapists and clients, and its
    latest invitations. Cached per practice; any change to those rows invalidates it."""

    tenant: PracticeSummary
    therapists: tuple[Member, ...]
    clients: tuple[Member, ...]
    invitations: tuple[InvitationLine, ...]


def practice_home(session: Session, regions: CachedRegions,
                  tenant_id: uuid.UUID) -> PracticeHome | None:
    """The session must see the practice (its own tenant context, or an admin's)."""
    stored = regions.get(*practice_home_entry(session, tenant_id))
    return _home_from(stored) if stored is not None else None


def practice_home_entry(session: Session, tenant_id: uuid.UUID
                        ) -> tuple[CacheKey, Callable[[], dict[str, Any] | None]]:
    return PRACTICE_HOMES.key(tenant_id), lambda: _home(session, tenant_id)


def _home(session: Session, tenant_id: uuid.UUID) -> dict[str, Any] | None:
    """Read as the practice itself, whatever the session's context at the time (a request
    reads it along with its session, before its own practice is set)."""
    with within_tenant(session, tenant_id):
        tenant = session.get(Tenant, tenant_id)
        if tenant is None:
            return None
        members = session.execute(
            sa.select(Account.id, Account.role, Account.display_name, Account.created_at)
            .order_by(Account.display_name)
        ).all()
        invited = invitations(session)
    return {
        "tenant": {"id": str(tenant.id), "name": tenant.name, "slug": tenant.slug,
                   "status": tenant.status},
        "members": [{"id": str(m.id), "role": m.role, "display_name": m.display_name,
                     "created_at": m.created_at.isoformat()} for m in members],
        "invitations": [{"id": str(i.id), "email": i.email,
                         "created_at": i.created_at.isoformat(),
                         "accepted_at": _iso(i.accepted_at), "revoked_at": _iso(i.revoked_at)}
                        for i in invited],
    }


def _home_from(stored: dict[str, Any]) -> PracticeHome:
    tenant = stored["tenant"]
    members = [(m["role"], Member(uuid.UUID(m["id"]), m["display_name"],
                                  datetime.fromisoformat(m["created_at"])))
               for m in stored["members"]]
    return PracticeHome(
        tenant=PracticeSummary(uuid.UUID(tenant["id"]), tenant["name"], tenant["slug"],
                               tenant["status"]),
        therapists=tuple(m for role, m in members if role == Role.THERAPIST),
        clients=tuple(m for role, m in members if role == Role.CLIENT),
        invitations=tuple(InvitationLine(uuid.UUID(i["id"]), i["email"],
                                         datetime.fromisoformat(i["created_at"]),
                                         _datetime(i["accepted_at"]), _datetime(i["revoked_at"]))
                          for i in stored["invitations"]),
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _datetime(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None

