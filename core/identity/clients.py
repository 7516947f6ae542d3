"""A practice's clients as its therapist sees them: the directory (search, sort, keyset
paging), one client's page, and what a therapist may do about a client (a set-up reminder,
removal from the practice).

Like every read of tenant-owned rows, these carry no tenant filter of their own: the session's
tenant context scopes them (and row-level security backs that up).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core import clock
from core.errors import NotFound, RateLimited, ValidationFailed
from core.events.types import EventType
from core.identity import sessions
from core.identity.models import Account, AuthSession, Identity, Invitation, Role
from core.onboarding.models import OnboardingProgress
from core.onboarding.stages import Stage
from core.tenancy.guard import owned
from core.uow import UnitOfWork

PAGE_SIZE = 20
MAX_QUERY = 100
REMINDER_COOLDOWN = timedelta(hours=1)
_NEVER = datetime(1970, 1, 1, tzinfo=UTC)

SORTS: dict[str, Any] = {
    "name": sa.func.lower(Account.display_name),
    "email": Identity.email,
    "joined": Account.created_at,
    "seen": sa.func.coalesce(Account.last_seen_at, _NEVER),
}
DEFAULT_SORT = "name"


@dataclass(frozen=True)
class ClientRow:
    account_id: uuid.UUID
    display_name: str
    email: str
    stage: Stage
    completed_at: datetime | None
    joined_at: datetime
    last_seen_at: datetime | None

    @property
    def set_up(self) -> bool:
        return self.completed_at is not None


@dataclass(frozen=True)
class ClientQuery:
    """What the therapist asked for: a search, a sort, a direction, a page boundary."""

    search: str = ""
    sort: str = DEFAULT_SORT
    descending: bool = False
    after: str | None = None
    before: str | None = None

    @classmethod
    def parse(cls, *, search: str | None, sort: str | None, direction: str | None,
              after: str | None, before: str | None) -> ClientQuery:
        """Anything unusable falls back to the default rather than refusing the page."""
        return cls(search=" ".join((search or "").split())[:MAX_QUERY],
                   sort=sort if sort in SORTS else DEFAULT_SORT,
                   descending=direction == "desc",
                   after=after or None, before=None if after else (before or None))


@dataclass(frozen=True)
class ClientPage:
    rows: Sequence[ClientRow]
    query: ClientQuery
    next_cursor: str | None = None
    previous_cursor: str | None = None
    total: int = 0
    matching: int = 0


def _cursor(row: ClientRow, sort: str) -> str:
    value: Any = {
        "name": row.display_name.lower(), "email": row.email,
        "joined": row.joined_at.isoformat(),
        "seen": (row.last_seen_at or _NEVER).isoformat(),
    }[sort]
    raw = json.dumps([value, str(row.account_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str, sort: str) -> tuple[Any, uuid.UUID] | None:
    """A cursor from the address bar may be anything: None when it is not one of ours."""
    try:
        value, account_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if sort in ("joined", "seen"):
            value = datetime.fromisoformat(value)
            if value.tzinfo is None:
                return None
        elif not isinstance(value, str):
            return None
        return value, uuid.UUID(account_id)
    except (ValueError, TypeError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def _base(query: ClientQuery) -> sa.Select[*tuple[Any, ...]]:
    statement = (
        sa.select(Account.id, Account.display_name, Identity.email, OnboardingProgress.stage,
                  OnboardingProgress.completed_at, Account.created_at, Account.last_seen_at)
        .join(Identity, Identity.id == Account.identity_id)
        .outerjoin(OnboardingProgress, OnboardingProgress.account_id == Account.id)
        .where(Account.role == Role.CLIENT)
    )
    if query.search:
        pattern = "%" + query.search.replace("\\", "\\\\").replace("%", "\\%") \
            .replace("_", "\\_") + "%"
        statement = statement.where(sa.or_(Account.display_name.ilike(pattern, escape="\\"),
                                           Identity.email.ilike(pattern, escape="\\")))
    return statement


def client_page(session: Session, query: ClientQuery, *, size: int = PAGE_SIZE) -> ClientPage:
    key = SORTS[query.sort]
    boundary = _decode(query.after or query.before or "", query.sort) \
        if (query.after or query.before) else None
    backwards = boundary is not None and query.before is not None
    # Reading backwards (the page before) runs the order the other way, then turns it round.
    ascending = query.descending == backwards
    statement = _base(query)
    if boundary is not None:
        value, last_id = boundary
        beyond = (key > value) if ascending else (key < value)
        tie = (Account.id > last_id) if ascending else (Account.id < last_id)
        statement = statement.where(sa.or_(beyond, sa.and_(key == value, tie)))
    order = (key.asc(), Account.id.asc()) if ascending else (key.desc(), Account.id.desc())
    found = [ClientRow(r[0], r[1], r[2], Stage(r[3] or Stage.STARTED), r[4], r[5], r[6])
             for r in session.execute(statement.order_by(*order).limit(size + 1)).all()]
    more = len(found) > size
    rows = found[:size]
    if backwards:
        rows.reverse()
    has_next = more if not backwards else True
    has_previous = (more if backwards else boundary is not None)
    return ClientPage(
        rows=rows, query=query,
        next_cursor=_cursor(rows[-1], query.sort) if rows and has_next else None,
        previous_cursor=_cursor(rows[0], query.sort) if rows and has_previous else None,
        total=_count(session, ClientQuery()),
        matching=_count(session, query) if query.search else 0,
    )


def _count(session: Session, query: ClientQuery) -> int:
    return int(session.execute(
        sa.select(sa.func.count()).select_from(_base(query).subquery())).scalar_one())


def newest_clients(session: Session, limit: int = 5) -> Sequence[ClientRow]:
    page = client_page(session, ClientQuery(sort="joined", descending=True), size=limit)
    return page.rows


# -- one client ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClientDetail:
    account: Account
    email: str
    progress: OnboardingProgress | None
    invitations: Sequence[Invitation]

    @property
    def answers(self) -> dict[str, Any]:
        data = (self.progress.data or {}) if self.progress else {}
        return dict(data.get(Stage.PERSONAL_INFO.value, {}))

    @property
    def set_up(self) -> bool:
        return self.progress is not None and self.progress.completed_at is not None

    @property
    def reminder_available_at(self) -> datetime | None:
        if self.progress is None or self.progress.last_reminder_at is None:
            return None
        ready = self.progress.last_reminder_at + REMINDER_COOLDOWN
        return ready if ready > clock.now() else None


def _client(session: Session, account_id: uuid.UUID) -> Account:
    account = owned(session, Account, account_id)
    if account.role != Role.CLIENT:
        raise NotFound("There is nothing at this address.")
    return account


def client_detail(session: Session, account_id: uuid.UUID) -> ClientDetail:
    account = _client(session, account_id)
    identity = session.get(Identity, account.identity_id)
    email = identity.email if identity else ""
    progress = session.execute(
        sa.select(OnboardingProgress).where(OnboardingProgress.account_id == account.id)
    ).scalar_one_or_none()
    history = session.execute(
        sa.select(Invitation).where(sa.or_(Invitation.email == email,
                                           Invitation.accepted_account_id == account.id))
        .order_by(Invitation.created_at.desc())
    ).scalars().all()
    return ClientDetail(account, email, progress, history)


def remind_client(uow: UnitOfWork, therapist: Account, account_id: uuid.UUID) -> Account:
    """E-mail a client whose set-up is unfinished a link to resume it (at most once an hour)."""
    detail = client_detail(uow.session, account_id)
    progress = detail.progress
    if progress is None or progress.completed_at is not None:
        raise ValidationFailed({"reminder": f"{detail.account.display_name} has finished "
                                            "setting up; there is nothing to remind."})
    ready = detail.reminder_available_at
    if ready is not None:
        minutes = max(1, round((ready - clock.now()).total_seconds() / 60))
        raise RateLimited(f"A reminder went out a moment ago. You can send another in "
                          f"{minutes} minute{'s' if minutes != 1 else ''}.",
                          int((ready - clock.now()).total_seconds()) + 1)
    progress.last_reminder_at = clock.now()
    uow.record(EventType.ONBOARDING_REMINDER_REQUESTED, tenant_id=progress.tenant_id,
               actor_account_id=progress.account_id, subject=f"account:{progress.account_id}",
               payload={"requested_by": str(therapist.id)})
    return detail.account


def remove_client(uow: UnitOfWork, therapist: Account,
                  account_id: uuid.UUID) -> Account:
    """Take a client out of the practice: their client account (and its set-up) goes, their
    identity and any other accounts stay. Sessions in that account end at once."""
    session = uow.session
    account = _client(session, account_id)
    identity = session.get(Identity, account.identity_id)
    in_account = session.execute(
        sa.select(AuthSession.id_hash).where(AuthSession.account_id == account.id,
                                             AuthSession.revoked_at.is_(None))
    ).scalars().all()
    for id_hash in in_account:
        sessions.end(session, id_hash, "removed")
    if identity is not None and identity.last_account_id == account.id:
        identity.last_account_id = None
    uow.record(EventType.CLIENT_REMOVED, tenant_id=account.tenant_id,
               actor_account_id=therapist.id, subject=f"identity:{account.identity_id}",
               payload={"account_id": str(account.id),
                        "personal": {"name": account.display_name}})
    session.execute(sa.delete(OnboardingProgress)
                    .where(OnboardingProgress.account_id == account.id))
    session.delete(account)
    session.flush()
    return account
