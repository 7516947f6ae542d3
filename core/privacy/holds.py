"""What a practice must keep: its record-retention period and legal holds on clients.

An erasure of a client whose practice keeps records (a retention period, or a hold on that
client) closes the account and erases the live data, but keeps a snapshot of the practice's
records about them, restricted: nobody reads it but a platform admin who gives a reason (the
reason is audited). It is erased when the retention period has passed and the hold ended.
"""

from __future__ import annotations

import calendar
import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core import clock
from core.errors import Forbidden, NotFound, ValidationFailed
from core.events.types import EventType
from core.identity.models import Account, Identity, Role
from core.identity.sessions import SessionView
from core.privacy.models import LegalHold, RestrictedRecord
from core.scoping import crossing_tenants
from core.tenancy.guard import owned
from core.tenancy.models import Tenant
from core.text import storable_text
from core.uow import UnitOfWork

RETENTION_KEY = "record_retention_months"
MAX_RETENTION_MONTHS = 600


def add_months(moment: datetime, months: int) -> datetime:
    month0 = moment.month - 1 + months
    year, month = moment.year + month0 // 12, month0 % 12 + 1
    return moment.replace(year=year, month=month,
                          day=min(moment.day, calendar.monthrange(year, month)[1]))


def retention_months(tenant: Tenant | None) -> int:
    value = (tenant.settings or {}).get(RETENTION_KEY) if tenant else None
    return int(value) if isinstance(value, int) else 0


def _owner(view: SessionView) -> uuid.UUID:
    if view.role != Role.THERAPIST or view.tenant_uuid is None:
        raise Forbidden("Only a practice's therapist may do this.")
    return view.tenant_uuid


def set_retention(uow: UnitOfWork, view: SessionView, months: object) -> int:
    tenant_id = _owner(view)
    try:
        value = int(str(months).strip())
    except ValueError:
        raise ValidationFailed({"months": "Enter a whole number of months."}) from None
    if not 0 <= value <= MAX_RETENTION_MONTHS:
        raise ValidationFailed({"months": f"Between 0 and {MAX_RETENTION_MONTHS} months."})
    tenant = uow.session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("No such practice.")
    tenant.settings = {**(tenant.settings or {}), RETENTION_KEY: value}
    uow.record(EventType.PRACTICE_SETTINGS_CHANGED, tenant_id=tenant_id,
               actor_account_id=view.account_uuid, subject=f"tenant:{tenant_id}",
               payload={RETENTION_KEY: value})
    return value


def place_hold(uow: UnitOfWork, view: SessionView, account_id: uuid.UUID, *, reason: str,
               until: datetime | None) -> LegalHold:
    tenant_id = _owner(view)
    client = owned(uow.session, Account, account_id)
    if client.role != Role.CLIENT:
        raise NotFound("There is nothing at this address.")
    text = (storable_text(reason, 500) or "").strip()
    if len(text) < 3:
        raise ValidationFailed({"reason": "Say why the records must be kept."})
    if until is not None and until <= clock.now():
        raise ValidationFailed({"until": "Choose a date in the future, or none."})
    hold = LegalHold(id=uuid.uuid4(), tenant_id=tenant_id, account_id=client.id, reason=text,
                     placed_by_account_id=view.account_uuid, placed_at=clock.now(), until=until)
    uow.session.add(hold)
    uow.record(EventType.LEGAL_HOLD_PLACED, tenant_id=tenant_id,
               actor_account_id=view.account_uuid, subject=f"account:{client.id}",
               payload={"hold_id": str(hold.id),
                        "until": until.isoformat() if until else None})
    return hold


def release_hold(uow: UnitOfWork, view: SessionView, hold_id: uuid.UUID) -> LegalHold:
    tenant_id = _owner(view)
    hold = owned(uow.session, LegalHold, hold_id)
    if hold.released_at is None:
        hold.released_at = clock.now()
        uow.record(EventType.LEGAL_HOLD_RELEASED, tenant_id=tenant_id,
                   actor_account_id=view.account_uuid, subject=f"account:{hold.account_id}",
                   payload={"hold_id": str(hold.id)})
    return hold


def holding(hold: LegalHold, now: datetime) -> bool:
    return hold.released_at is None and (hold.until is None or hold.until > now)


def active_hold(session: Session, account_id: uuid.UUID, now: datetime) -> LegalHold | None:
    with crossing_tenants(session):
        holds = session.execute(sa.select(LegalHold).where(
            LegalHold.account_id == account_id, LegalHold.released_at.is_(None))
            .order_by(LegalHold.placed_at)).scalars().all()
    live = [hold for hold in holds if holding(hold, now)]
    return live[0] if live else None


def holds_of_practice(session: Session, tenant_id: uuid.UUID) -> list[LegalHold]:
    return list(session.execute(sa.select(LegalHold).where(
        LegalHold.tenant_id == tenant_id).order_by(LegalHold.placed_at.desc())).scalars())


@dataclass(frozen=True)
class Client:
    """A client a practice may place a hold on, as the practice knows them."""

    account_id: uuid.UUID
    name: str
    email: str


def clients_of_practice(session: Session, tenant_id: uuid.UUID) -> list[Client]:
    """The practice's clients by name (the hold form's choices, the hold list's names)."""
    rows = session.execute(
        sa.select(Account.id, Account.display_name, Identity.email)
        .join(Identity, Identity.id == Account.identity_id)
        .where(Account.tenant_id == tenant_id, Account.role == Role.CLIENT)
        .order_by(sa.func.lower(Account.display_name), Account.id))
    return [Client(account_id, name, email) for account_id, name, email in rows]


@dataclass(frozen=True)
class Kept:
    """Records of one practice an erasure keeps, restricted."""

    tenant_id: uuid.UUID
    practice: str
    account_id: uuid.UUID
    until: datetime | None  # None: until the practice lifts its legal hold
    retention_months: int
    hold_id: uuid.UUID | None

    def describe(self) -> str:
        why = []
        if self.retention_months:
            why.append(f"its record-retention period of {self.retention_months} months")
        if self.hold_id is not None:
            why.append("a legal hold")
        until = (f"until {self.until:%d %B %Y}" if self.until is not None
                 else "until the practice lifts its legal hold")
        return (f"{self.practice} keeps your client record (your name, e-mail address, profile "
                f"and set-up answers, invitations) because of {' and '.join(why)}, restricted "
                f"(nobody may read it but a platform admin who records why), {until}; then it "
                "is erased too.")

    def as_json(self) -> dict[str, object]:
        return {"practice_id": str(self.tenant_id), "practice": self.practice,
                "account_id": str(self.account_id),
                "until": self.until.isoformat() if self.until else None,
                "retention_months": self.retention_months,
                "hold_id": str(self.hold_id) if self.hold_id else None,
                "text": self.describe()}


def what_is_kept(session: Session, accounts: list[Account], now: datetime) -> list[Kept]:
    kept = []
    for account in accounts:
        if account.role != Role.CLIENT or account.tenant_id is None:
            continue
        tenant = session.get(Tenant, account.tenant_id)
        months = retention_months(tenant)
        hold = active_hold(session, account.id, now)
        if not months and hold is None:
            continue
        ends = [add_months(now, months)] if months else []
        if hold is not None and hold.until is not None:
            ends.append(hold.until)
        until = None if hold is not None and hold.until is None else max(ends)
        kept.append(Kept(account.tenant_id, tenant.name if tenant else "", account.id, until,
                         months, hold.id if hold else None))
    return kept


def may_finish(session: Session, record: RestrictedRecord, now: datetime) -> bool:
    if record.kept_until is not None and record.kept_until > now:
        return False
    if record.hold_id is None:
        return record.kept_until is not None
    hold = session.get(LegalHold, record.hold_id)
    return hold is None or not holding(hold, now)


def read_restricted(uow: UnitOfWork, view: SessionView, record_id: uuid.UUID,
                    reason: str) -> RestrictedRecord:
    """A restricted record, for a platform admin who says why (audited); nobody else."""
    if view.role != Role.ADMIN:
        raise NotFound("There is nothing at this address.")
    text = (storable_text(reason, 500) or "").strip()
    if len(text) < 10:
        raise ValidationFailed({"reason": "Say why you need to read this record (at least 10 "
                                          "characters); it is kept in the audit log."})
    with crossing_tenants(uow.session):
        record = uow.session.get(RestrictedRecord, record_id)
    if record is None:
        raise NotFound("There is nothing at this address.")
    uow.record(EventType.RESTRICTED_DATA_VIEWED, tenant_id=record.tenant_id,
               actor_account_id=view.account_uuid, subject=f"restricted:{record.id}",
               payload={"reason": text, "request_id": str(record.request_id)})
    return record
