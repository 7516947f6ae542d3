"""Read models for the dashboards. Tenant-owned queries carry no tenant filter of their own:
the session's tenant context scopes them (and row-level security backs that up)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core import clock
from core.errors import NotFound
from core.identity.invitations import InvitationState, resend_available_at, state_of
from core.identity.models import Account, Identity, Invitation, Role
from core.onboarding.models import OnboardingProgress
from core.onboarding.schemas import LANGUAGES, SPECIALTIES
from core.onboarding.stages import Stage
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


@dataclass(frozen=True)
class InvitationRow:
    invitation: Invitation
    state: InvitationState
    # While the resend cooldown runs: when the button works again.
    resend_at: datetime | None


def invitation_rows(session: Session, *, limit: int = 50) -> list[InvitationRow]:
    """The practice's invitations, newest (or newest sent) first, each with its state."""
    found = session.execute(
        sa.select(Invitation)
        .order_by(sa.func.coalesce(Invitation.last_sent_at, Invitation.created_at).desc())
        .limit(limit)
    ).scalars().all()
    now = clock.now()
    return [InvitationRow(i, state_of(i, now), resend_available_at(i)) for i in found]


@dataclass(frozen=True)
class TherapistCard:
    name: str
    specialties: list[str]
    years_in_practice: str | None


@dataclass(frozen=True)
class PracticeDetails:
    """What a client sees of their practice."""

    tenant: Tenant
    therapists: list[TherapistCard]
    time_zone: str | None
    language: str | None


def practice_details(session: Session, tenant_id: uuid.UUID) -> PracticeDetails | None:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        return None
    rows = session.execute(
        sa.select(Account.display_name, OnboardingProgress.data)
        .outerjoin(OnboardingProgress, OnboardingProgress.account_id == Account.id)
        .where(Account.role == Role.THERAPIST, Account.tenant_id == tenant_id)
        .order_by(Account.display_name)
    ).all()
    cards = []
    for name, data in rows:
        professional = (data or {}).get(Stage.PROFESSIONAL_INFO.value, {})
        cards.append(TherapistCard(
            name=name,
            specialties=[SPECIALTIES[s] for s in professional.get("specialties") or []
                         if s in SPECIALTIES],
            years_in_practice=str(professional["years_in_practice"])
            if professional.get("years_in_practice") not in (None, "") else None))
    settings = tenant.settings or {}
    return PracticeDetails(tenant, cards, settings.get("time_zone"),
                           LANGUAGES.get(settings.get("language") or ""))




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


