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
from core.identity.clients import ClientPage, ClientQuery, ClientRow, client_page
from core.identity.invitations import InvitationState, resend_available_at, state_of
from core.identity.models import Account, Identity, Invitation, Role
from core.onboarding.models import OnboardingProgress
from core.onboarding.schemas import LANGUAGES, SPECIALTIES
from core.onboarding.stages import Stage
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


@dataclass(frozen=True)
class InvitationRow:
    invitation: Invitation
    state: InvitationState
    # While the resend cooldown runs: when the button works again.
    resend_at: datetime | None


def invitation_rows(session: Session, *, limit: int = 50) -> list[InvitationRow]:
    """The practice's invitations, newest (or newest sent) first, each with its state."""
    now = clock.now()
    return [InvitationRow(i, state_of(i, now), resend_available_at(i))
            for i in _latest_invitations(session, limit)]


def _latest_invitations(session: Session, limit: int = 50) -> Sequence[Invitation]:
    return session.execute(
        sa.select(Invitation)
        .order_by(sa.func.coalesce(Invitation.last_sent_at, Invitation.created_at).desc())
        .limit(limit)
    ).scalars().all()


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


# -- a practice's dashboard, cached ------------------------------------------------------------

# -- a practice's dashboards, cached ------------------------------------------------------------
#
# What the therapist's and the clients' dashboards show is read once per practice and kept in
# the PRACTICE_HOMES region: a warm dashboard asks the database nothing. The entry holds plain
# values; reading it back builds the same objects the pages are given uncached (the practice
# and its invitations as unsaved model instances, never added to a session). Anything that
# changes one of those rows invalidates the entry as its transaction commits (each model's
# `cached_under`); states that follow the clock (an invitation expiring, a resend becoming
# possible) are worked out when the entry is read.

NEWEST_CLIENTS = 5


@dataclass(frozen=True)
class PracticeHome:
    tenant: Tenant
    newest: ClientPage  # the newest clients, for the therapist's dashboard
    invitations: list[InvitationRow]
    details: PracticeDetails  # what a client sees of the practice

    def steady_until(self) -> datetime | None:
        """The next moment an invitation's state or resend button changes by the clock alone
        (None: nothing shown here follows the clock)."""
        moments = [row.invitation.expires_at for row in self.invitations
                   if row.state == InvitationState.PENDING]
        moments += [row.resend_at for row in self.invitations if row.resend_at is not None]
        return min(moments, default=None)


def practice_home(session: Session, regions: CachedRegions,
                  tenant_id: uuid.UUID) -> PracticeHome | None:
    """The session must see the practice (its own tenant context, or an admin's)."""
    stored = regions.get(*practice_home_entry(session, tenant_id))
    return _home_from(stored) if stored is not None else None


def practice_home_entry(session: Session, tenant_id: uuid.UUID
                        ) -> tuple[CacheKey, Callable[[], dict[str, Any] | None]]:
    return PRACTICE_HOMES.key(tenant_id), lambda: _home(session, tenant_id)


_TENANT_FIELDS = ("id", "slug", "name", "status", "plan", "settings", "created_at",
                  "activated_at")
_CLIENT_ROW_FIELDS = ("account_id", "display_name", "email", "stage", "completed_at",
                      "joined_at", "last_seen_at")
_INVITATION_FIELDS = ("id", "tenant_id", "email", "invited_by_account_id", "created_at",
                      "expires_at", "accepted_at", "accepted_account_id", "revoked_at",
                      "last_sent_at", "send_count", "renewal_requested_at")


def _home(session: Session, tenant_id: uuid.UUID) -> dict[str, Any] | None:
    """Read as the practice itself, whatever the session's context at the time (a request
    reads it along with its session, before its own practice is set)."""
    with within_tenant(session, tenant_id):
        details = practice_details(session, tenant_id)
        if details is None:
            return None
        newest = client_page(session, ClientQuery(sort="joined", descending=True),
                             size=NEWEST_CLIENTS)
        invited = _latest_invitations(session)
    return {
        "tenant": _plain(details.tenant, _TENANT_FIELDS),
        "newest": {"total": newest.total,
                   "rows": [_plain(row, _CLIENT_ROW_FIELDS) for row in newest.rows]},
        "invitations": [_plain(i, _INVITATION_FIELDS) for i in invited],
        "details": {"therapists": [vars(card) for card in details.therapists],
                    "time_zone": details.time_zone, "language": details.language},
    }


def _home_from(stored: dict[str, Any]) -> PracticeHome:
    tenant = Tenant(**_typed(stored["tenant"], _TENANT_FIELDS))
    newest = ClientPage(
        rows=[ClientRow(**{**_typed(r, _CLIENT_ROW_FIELDS), "stage": Stage(r["stage"])})
              for r in stored["newest"]["rows"]],
        query=ClientQuery(sort="joined", descending=True), total=stored["newest"]["total"])
    now = clock.now()
    invitations = [Invitation(**_typed(i, _INVITATION_FIELDS)) for i in stored["invitations"]]
    details = stored["details"]
    return PracticeHome(
        tenant=tenant, newest=newest,
        invitations=[InvitationRow(i, state_of(i, now), resend_available_at(i))
                     for i in invitations],
        details=PracticeDetails(tenant, [TherapistCard(**card) for card in details["therapists"]],
                                details["time_zone"], details["language"]))


def _plain(instance: object, fields: Sequence[str]) -> dict[str, Any]:
    """A row as JSON-ready values (ids and times as text)."""
    values = {}
    for name in fields:
        value = getattr(instance, name)
        values[name] = value.isoformat() if isinstance(value, datetime) else (
            str(value) if isinstance(value, uuid.UUID) else value)
    return values


def _typed(values: dict[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    """Back from `_plain`: ids and times from their text."""
    typed = {}
    for name in fields:
        value = values.get(name)
        if isinstance(value, str) and (name == "id" or name.endswith("_id")):
            value = uuid.UUID(value)
        elif isinstance(value, str) and name.endswith("_at"):
            value = datetime.fromisoformat(value)
        typed[name] = value
    return typed
