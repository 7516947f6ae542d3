"""Server-side sessions: the cookie carries a random id, the database the truth, the cache speed.

A warm request costs one cache read and no query: the cached view holds who the person is, the
account in use and the accounts they can switch to. Logging out or revoking deletes the cache
entry at once, so a copied cookie stops working on every web process immediately.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core import clock
from core.adapters.cache import Cache
from core.config import Settings
from core.errors import NotFound
from core.events.types import EventType
from core.identity.directory import accounts_of
from core.identity.models import Account, AuthSession, Identity
from core.identity.tokens import digest, new_secret
from core.identity.zones import time_zone_of
from core.scoping import crossing_tenants
from core.tenancy.models import Tenant
from core.text import storable_text
from core.uow import UnitOfWork

CACHE_TTL_SECONDS = 300
# last_seen_at is written at most this often per session (it drives the idle timeout).
TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class AccountChoice:
    account_id: str
    role: str
    tenant_id: str | None
    tenant_name: str | None


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


def _cache_key(id_hash: str) -> str:
    return f"session:{id_hash}"


def start(session: Session, identity: Identity, account: Account, *, ip: str | None,
          user_agent: str | None) -> str:
    """Create a session for `account`; returns the raw id for the cookie (never stored)."""
    raw = new_secret()
    now = clock.now()
    session.add(AuthSession(id_hash=digest(raw), identity_id=identity.id, account_id=account.id,
                            created_at=now, last_seen_at=now, ip=ip,
                            user_agent=storable_text(user_agent, 400)))
    identity.last_account_id = account.id
    account.last_seen_at = now
    return raw


def end(session: Session, cache: Cache, id_hash: str, reason: str) -> AuthSession | None:
    record = session.get(AuthSession, id_hash)
    if record is not None and record.revoked_at is None:
        record.revoked_at = clock.now()
        record.ended_reason = reason
    cache.delete(_cache_key(id_hash))
    return record


def end_all(session: Session, cache: Cache, identity_id: uuid.UUID, reason: str, *,
            keep: str | None = None) -> int:
    """End every live session of an identity except `keep` (the one making the change)."""
    live = session.execute(
        sa.select(AuthSession).where(AuthSession.identity_id == identity_id,
                                     AuthSession.revoked_at.is_(None))
    ).scalars().all()
    ended = 0
    for record in live:
        if record.id_hash != keep:
            end(session, cache, record.id_hash, reason)
            ended += 1
    return ended


def forget_cached(session: Session, cache: Cache, identity_id: uuid.UUID) -> None:
    """Drop cached views of an identity's sessions (e.g. after an account was added)."""
    hashes = session.execute(
        sa.select(AuthSession.id_hash).where(AuthSession.identity_id == identity_id,
                                             AuthSession.revoked_at.is_(None))
    ).scalars().all()
    cache.delete(*(_cache_key(h) for h in hashes))


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


def load(session: Session, cache: Cache, settings: Settings, raw_id: object) -> SessionView | None:
    """The view of a live session, or None (unknown, revoked or timed out). `raw_id` comes from
    a signed cookie, but a signed cookie from another version of the app may hold anything.
    Ending a timed-out session and noting that one is in use are left for the caller's commit
    (the request's unit of work)."""
    if not isinstance(raw_id, str) or not raw_id or len(raw_id) > 100:
        return None
    id_hash = digest(raw_id)
    cached = cache.get(_cache_key(id_hash))
    view = SessionView.from_json(cached) if cached else _build_view(session, id_hash)
    if view is None:
        return None
    reason = _expired(datetime.fromisoformat(view.created_at),
                      datetime.fromisoformat(view.last_seen_at), settings)
    if reason:
        end(session, cache, id_hash, reason)
        return None
    if clock.now() - datetime.fromisoformat(view.last_seen_at) > TOUCH_EVERY:
        view = _touch(session, view)
    if cached is None or view.last_seen_at != SessionView.from_json(cached).last_seen_at:
        cache.set(_cache_key(id_hash), view.to_json(), CACHE_TTL_SECONDS)
    return view


def _touch(session: Session, view: SessionView) -> SessionView:
    now = clock.now()
    session.execute(sa.update(AuthSession).where(AuthSession.id_hash == view.id_hash)
                    .values(last_seen_at=now))
    with crossing_tenants(session):
        session.execute(sa.update(Account).where(Account.id == view.account_uuid)
                        .values(last_seen_at=now))
    data = asdict(view)
    data["last_seen_at"] = now.isoformat()
    data["accounts"] = view.accounts
    return SessionView(**data)


def _build_view(session: Session, id_hash: str) -> SessionView | None:
    record = session.get(AuthSession, id_hash)
    if record is None or record.revoked_at is not None:
        return None
    identity = session.get(Identity, record.identity_id)
    accounts = accounts_of(session, record.identity_id)
    current = next((a for a in accounts if a.id == record.account_id), None)
    if identity is None or current is None:
        return None
    tenants = _tenants(session, [a.tenant_id for a in accounts if a.tenant_id])
    tenant = tenants.get(current.tenant_id) if current.tenant_id else None
    return SessionView(
        id_hash=id_hash,
        identity_id=str(identity.id),
        email=identity.email,
        email_verified=identity.email_verified_at is not None,
        account_id=str(current.id),
        role=current.role,
        display_name=current.display_name,
        tenant_id=str(current.tenant_id) if current.tenant_id else None,
        tenant_name=tenant.name if tenant else None,
        tenant_slug=tenant.slug if tenant else None,
        created_at=record.created_at.isoformat(),
        last_seen_at=record.last_seen_at.isoformat(),
        accounts=tuple(
            AccountChoice(account_id=str(a.id), role=a.role,
                          tenant_id=str(a.tenant_id) if a.tenant_id else None,
                          tenant_name=tenants[a.tenant_id].name if a.tenant_id else None)
            for a in accounts
        ),
        time_zone=time_zone_of(session, identity.id, current.id),
    )


def _tenants(session: Session, ids: list[uuid.UUID]) -> dict[uuid.UUID, Tenant]:
    if not ids:
        return {}
    rows = session.execute(sa.select(Tenant).where(Tenant.id.in_(ids))).scalars()
    return {t.id: t for t in rows}


# -- a person's own sessions ---------------------------------------------------------------------

def revoke_session(uow: UnitOfWork, cache: Cache, view: SessionView, target_hash: str) -> None:
    """Log out one of your own sessions (another person's is simply not found)."""
    record = uow.session.get(AuthSession, target_hash) if is_id_hash(target_hash) else None
    if record is None or str(record.identity_id) != view.identity_id:
        raise NotFound("No such session.")
    if record.revoked_at is not None:
        return  # ended meanwhile (another tab, a timeout): nothing left to do
    end(uow.session, cache, target_hash, "revoked")
    uow.record(EventType.SESSION_REVOKED, tenant_id=view.tenant_uuid,
               actor_account_id=view.account_uuid, subject=f"identity:{view.identity_id}",
               payload={"which": "one"})


def revoke_other_sessions(uow: UnitOfWork, cache: Cache, view: SessionView) -> int:
    ended = end_all(uow.session, cache, view.identity_uuid, "revoked", keep=view.id_hash)
    uow.record(EventType.SESSION_REVOKED, tenant_id=view.tenant_uuid,
               actor_account_id=view.account_uuid, subject=f"identity:{view.identity_id}",
               payload={"which": "others", "count": ended})
    return ended
