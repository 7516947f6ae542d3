"""Server-side sessions: the cookie carries a random id, the database the truth, the cache speed.

A warm request costs two cache reads and no query: the session (who, which account, since when;
`SESSIONS`), then in one round trip the accounts its identity can act as (`ROLES`, the role
switcher) and its profile (`PROFILES`). Each is invalidated on every process once a change to
its rows commits (core.caching), so logging out or revoking stops a copied cookie everywhere at
once, and a role granted from the CLI shows in an open session's switcher on its next request.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core import clock
from core.caching import (
    PROFILES,
    ROLES,
    SESSIONS,
    CachedRegions,
    CacheKey,
    invalidate_after_commit,
)
from core.config import Settings
from core.errors import NotFound
from core.events.types import EventType
from core.identity.directory import accounts_of
from core.identity.models import Account, AuthSession, Identity
from core.identity.tokens import digest, new_secret
from core.scoping import crossing_tenants
from core.tenancy.models import Tenant
from core.text import storable_text
from core.uow import UnitOfWork

# last_seen_at is written at most this often per session (it drives the idle timeout).
TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class AccountChoice:
    account_id: str
    role: str
    tenant_id: str | None
    tenant_name: str | None
    tenant_slug: str | None = None
    display_name: str = ""


@dataclass(frozen=True)
class SessionView:
    """Everything a request needs to know about who is asking."""

    id_hash: str
    identity_id: str
    email: str
    email_verified: bool
    account_id: str
    role: str
    display_name: str
    tenant_id: str | None
    tenant_name: str | None
    tenant_slug: str | None
    created_at: str
    last_seen_at: str
    accounts: tuple[AccountChoice, ...]
    # Where the person reads times (core.identity.zones); cached views from before it: UTC.
    time_zone: str = "UTC"
    # How the session was made, when a second factor was last proven, and what it must do
    # before anything else (core.identity.mfa_policy.Gate); cached views from before: none.
    factors: str = "password"
    second_factor_at: str | None = None
    gate: str | None = None

    @property
    def identity_uuid(self) -> uuid.UUID:
        return uuid.UUID(self.identity_id)

    @property
    def account_uuid(self) -> uuid.UUID:
        return uuid.UUID(self.account_id)

    @property
    def tenant_uuid(self) -> uuid.UUID | None:
        return uuid.UUID(self.tenant_id) if self.tenant_id else None

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> SessionView:
        data = json.loads(raw)
        data["accounts"] = tuple(AccountChoice(**a) for a in data["accounts"])
        return cls(**data)


def start(session: Session, identity: Identity, account: Account, *, ip: str | None,
          user_agent: str | None, factors: str = "password",
          second_factor_at: datetime | None = None, gate: str | None = None) -> str:
    """Create a session for `account`; returns the raw id for the cookie (never stored)."""
    raw = new_secret()
    now = clock.now()
    session.add(AuthSession(id_hash=digest(raw), identity_id=identity.id, account_id=account.id,
                            created_at=now, last_seen_at=now, ip=ip,
                            user_agent=storable_text(user_agent, 400), factors=factors,
                            second_factor_at=second_factor_at, gate=gate))
    identity.last_account_id = account.id
    account.last_seen_at = now
    return raw


def end(session: Session, id_hash: str, reason: str) -> AuthSession | None:
    """End a session; its cached entry goes on commit (AuthSession.cached_under)."""
    record = session.get(AuthSession, id_hash)
    if record is not None and record.revoked_at is None:
        record.revoked_at = clock.now()
        record.ended_reason = reason
    return record


def end_all(session: Session, identity_id: uuid.UUID, reason: str, *,
            keep: str | None = None) -> int:
    """End every live session of an identity except `keep` (the one making the change)."""
    live = session.execute(
        sa.select(AuthSession).where(AuthSession.identity_id == identity_id,
                                     AuthSession.revoked_at.is_(None))
    ).scalars().all()
    ended = 0
    for record in live:
        if record.id_hash != keep:
            end(session, record.id_hash, reason)
            ended += 1
    return ended


def live_sessions(session: Session, identity_id: uuid.UUID) -> Sequence[AuthSession]:
    return session.execute(
        sa.select(AuthSession)
        .where(AuthSession.identity_id == identity_id, AuthSession.revoked_at.is_(None))
        .order_by(AuthSession.last_seen_at.desc())
    ).scalars().all()


def _expired(created_at: datetime, last_seen_at: datetime, settings: Settings) -> str | None:
    now = clock.now()
    if now - created_at > timedelta(hours=settings.session_absolute_hours):
        return "expired_absolute"
    if now - last_seen_at > timedelta(minutes=settings.session_idle_minutes):
        return "expired_idle"
    return None


def is_id_hash(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


# What else a request will read about who is asking (its practice's request budget, its
# onboarding status, the page's own content …), fetched in the same round trip as the session's
# roles and profile: given the identity, the account and its practice (or None), the keys and
# how to compute each.
Prefetch = Callable[[uuid.UUID, uuid.UUID, uuid.UUID | None],
                    Sequence[tuple[CacheKey, Callable[[], Any]]]]


@dataclass(frozen=True)
class Who:
    """Whose session a cookie held last time (kept in the signed cookie beside the session id):
    which keys to read along with the session's own. A hint only: the session decides."""

    identity_id: uuid.UUID
    account_id: uuid.UUID
    tenant_id: uuid.UUID | None

    def as_cookie(self) -> list[str]:
        return [str(self.identity_id), str(self.account_id), str(self.tenant_id or "")]

    @classmethod
    def from_cookie(cls, value: object) -> Who | None:
        if not isinstance(value, list) or len(value) != 3:
            return None
        try:
            return cls(uuid.UUID(value[0]), uuid.UUID(value[1]),
                       uuid.UUID(value[2]) if value[2] else None)
        except (TypeError, ValueError, AttributeError):
            return None


def load(session: Session, regions: CachedRegions, settings: Settings,
         raw_id: object, *, prefetch: Prefetch | None = None,
         hint: Who | None = None) -> SessionView | None:
    """The view of a live session, or None (unknown, revoked or timed out). `raw_id` comes from
    a signed cookie, but a signed cookie from another version of the app may hold anything.
    With `hint` right, everything is read in one round trip; otherwise in two.
    Ending a timed-out session and noting that one is in use are left for the caller's commit
    (the request's unit of work)."""
    if not isinstance(raw_id, str) or not raw_id or len(raw_id) > 100:
        return None
    id_hash = digest(raw_id)
    record_entry = (SESSIONS.key(id_hash), lambda: _session_record(session, id_hash))
    if hint is not None:
        record = regions.get_many([record_entry], along=_reads(session, hint, prefetch))[0]
    else:
        record = regions.get(*record_entry)
    if record is None:
        return None
    created_at = datetime.fromisoformat(record["created_at"])
    last_seen_at = datetime.fromisoformat(record["last_seen_at"])
    reason = _expired(created_at, last_seen_at, settings)
    if reason:
        end(session, id_hash, reason)
        return None
    if clock.now() - last_seen_at > TOUCH_EVERY:
        last_seen_at = _touch(session, id_hash, uuid.UUID(record["account_id"]))
    who = Who(uuid.UUID(record["identity_id"]), uuid.UUID(record["account_id"]),
              uuid.UUID(record["tenant_id"]) if record.get("tenant_id") else None)
    reads = _reads(session, who, prefetch)  # read already if the hint was right
    roles, profile = regions.get_many(reads[:2], along=reads[2:])
    return _view(id_hash, record, last_seen_at, roles, profile)


def _reads(session: Session, who: Who,
           prefetch: Prefetch | None) -> list[tuple[CacheKey, Callable[[], Any]]]:
    """The identity's roles and profile, then what the request reads next (`prefetch`)."""
    identity_id = who.identity_id
    return [
        (ROLES.key(identity_id), lambda: _roles(session, identity_id)),
        (PROFILES.key(identity_id), lambda: _profile(session, identity_id)),
        *(prefetch(identity_id, who.account_id, who.tenant_id) if prefetch else ()),
    ]


def _view(id_hash: str, record: dict[str, Any], last_seen_at: datetime,
          roles: list[dict[str, Any]], profile: dict[str, Any] | None) -> SessionView | None:
    accounts = tuple(AccountChoice(**choice) for choice in roles)
    current = next((a for a in accounts if a.account_id == record["account_id"]), None)
    if current is None or profile is None:
        return None  # the account or the identity is gone
    return SessionView(
        id_hash=id_hash,
        identity_id=record["identity_id"],
        email=profile["email"],
        email_verified=profile["email_verified"],
        account_id=current.account_id,
        role=current.role,
        display_name=current.display_name,
        tenant_id=current.tenant_id,
        tenant_name=current.tenant_name,
        tenant_slug=current.tenant_slug,
        created_at=record["created_at"],
        last_seen_at=last_seen_at.isoformat(),
        accounts=accounts,
        factors=record.get("factors") or "password",
        second_factor_at=record.get("second_factor_at"),
        gate=record.get("gate"),
    )


def _touch(session: Session, id_hash: str, account_id: uuid.UUID) -> datetime:
    now = clock.now()
    session.execute(sa.update(AuthSession).where(AuthSession.id_hash == id_hash)
                    .values(last_seen_at=now))
    with crossing_tenants(session):
        session.execute(sa.update(Account).where(Account.id == account_id)
                        .values(last_seen_at=now))
    invalidate_after_commit(session, SESSIONS.key(id_hash))
    return now


def _session_record(session: Session, id_hash: str) -> dict[str, Any] | None:
    record = session.get(AuthSession, id_hash)
    if record is None or record.revoked_at is not None:
        return None
    with crossing_tenants(session):
        tenant_id = session.execute(sa.select(Account.tenant_id)
                                    .where(Account.id == record.account_id)).scalar()
    return {"identity_id": str(record.identity_id), "account_id": str(record.account_id),
            "tenant_id": str(tenant_id) if tenant_id else None,
            "created_at": record.created_at.isoformat(),
            "last_seen_at": record.last_seen_at.isoformat(),
            "factors": record.factors,
            "second_factor_at": (record.second_factor_at.isoformat()
                                 if record.second_factor_at else None),
            "gate": record.gate}


def _roles(session: Session, identity_id: uuid.UUID) -> list[dict[str, Any]]:
    accounts = accounts_of(session, identity_id)
    tenants = _tenants(session, [a.tenant_id for a in accounts if a.tenant_id])
    choices = []
    for account in accounts:
        tenant = tenants.get(account.tenant_id) if account.tenant_id else None
        choices.append(asdict(AccountChoice(
            account_id=str(account.id), role=account.role,
            tenant_id=str(account.tenant_id) if account.tenant_id else None,
            tenant_name=tenant.name if tenant else None,
            tenant_slug=tenant.slug if tenant else None,
            display_name=account.display_name)))
    return choices


def _profile(session: Session, identity_id: uuid.UUID) -> dict[str, Any] | None:
    identity = session.get(Identity, identity_id)
    if identity is None:
        return None
    return {"email": identity.email, "email_verified": identity.email_verified_at is not None}


def _tenants(session: Session, ids: list[uuid.UUID]) -> dict[uuid.UUID, Tenant]:
    if not ids:
        return {}
    rows = session.execute(sa.select(Tenant).where(Tenant.id.in_(ids))).scalars()
    return {t.id: t for t in rows}


# -- a person's own sessions ---------------------------------------------------------------------

def revoke_session(uow: UnitOfWork, view: SessionView, target_hash: str) -> None:
    """Log out one of your own sessions (another person's is simply not found)."""
    record = uow.session.get(AuthSession, target_hash) if is_id_hash(target_hash) else None
    if record is None or str(record.identity_id) != view.identity_id:
        raise NotFound("No such session.")
    if record.revoked_at is not None:
        return  # ended meanwhile (another tab, a timeout): nothing left to do
    end(uow.session, target_hash, "revoked")
    uow.record(EventType.SESSION_REVOKED, tenant_id=view.tenant_uuid,
               actor_account_id=view.account_uuid, subject=f"identity:{view.identity_id}",
               payload={"which": "one"})


def revoke_other_sessions(uow: UnitOfWork, view: SessionView) -> int:
    ended = end_all(uow.session, view.identity_uuid, "revoked", keep=view.id_hash)
    uow.record(EventType.SESSION_REVOKED, tenant_id=view.tenant_uuid,
               actor_account_id=view.account_uuid, subject=f"identity:{view.identity_id}",
               payload={"which": "others", "count": ended})
    return ended
