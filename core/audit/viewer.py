"""Reading the audit log as an admin (every practice) or a practice owner (their practice).

Filters come from the URL, so a view can be shared; pages are keyset pages over
(created_at, id), newest first: page 1,000 costs what page 1 costs, and entries written while
someone pages never make a page repeat or skip an entry. Which practices a viewer sees is the
session's business (its tenant scope and row-level security), never the filters'.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import INET
from sqlalchemy.orm import Session

from core.audit.chain import OUTCOMES
from core.audit.models import AuditEntry
from core.errors import ValidationFailed
from core.events.types import PLATFORM_ONLY, EventType
from core.identity.models import Account, Identity
from core.onboarding.models import OnboardingProgress
from core.tenancy.guard import owned

PAGE_SIZE = 50
# The days a filter may name: from before any entry to far beyond the last.
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(9998, 12, 31)
EVENT_TYPES = tuple(sorted(str(t) for t in EventType))
_PRACTICE_EVENT_TYPES = tuple(t for t in EVENT_TYPES if t not in PLATFORM_ONLY)


def event_types_for(tenant_id: uuid.UUID | None) -> tuple[str, ...]:
    """The types a viewer may find: every one on the platform, a practice's own in a practice."""
    return EVENT_TYPES if tenant_id is None else _PRACTICE_EVENT_TYPES


@dataclass(frozen=True)
class Filters:
    tenant_id: uuid.UUID | None = None
    types: tuple[str, ...] = ()
    actor: str | None = None  # an e-mail address, or an account or identity id
    network: str | None = None  # an address or a network: 203.0.113.7, 203.0.113.0/24
    since: datetime | None = None  # recorded at or after
    until: datetime | None = None  # recorded before
    outcome: str | None = None
    # The dates as typed (the viewer's time zone), to show them back.
    since_day: str | None = None
    until_day: str | None = None

    def as_args(self) -> dict[str, Any]:
        """The filters as URL parameters (a shareable link, a hidden form field)."""
        args: dict[str, Any] = {
            "practice": str(self.tenant_id) if self.tenant_id else None,
            "type": list(self.types) or None, "actor": self.actor, "ip": self.network,
            "from": self.since_day, "to": self.until_day, "outcome": self.outcome}
        return {key: value for key, value in args.items() if value}

    def describe(self) -> dict[str, Any]:
        """For the AUDIT_EXPORTED entry: what was exported, in UTC."""
        return {**self.as_args(), "since": self.since.isoformat() if self.since else None,
                "until": self.until.isoformat() if self.until else None}


def parse_filters(args: Mapping[str, Sequence[str]], zone: ZoneInfo, *,
                  practice: uuid.UUID | None = None) -> Filters:
    """Filters from URL parameters (each a list of values); dates are days in `zone`. A viewer
    confined to a `practice` may ask only for the types a practice can have."""
    errors: dict[str, str] = {}

    def one(name: str) -> str | None:
        values = [v.strip() for v in args.get(name, ()) if v.strip()]
        return values[0] if values else None

    tenant_id = _uuid(one("practice"), "practice", errors)
    types = tuple(dict.fromkeys(t.strip().upper() for t in args.get("type", ()) if t.strip()))
    if unknown := [t for t in types if t not in EVENT_TYPES]:
        errors["type"] = f"Unknown event type: {', '.join(unknown[:3])}."
    elif elsewhere := [t for t in types if t not in event_types_for(practice)]:
        errors["type"] = ("Recorded for the platform, never for a practice: "
                          f"{', '.join(elsewhere[:3])}.")
    network = one("ip")
    if network is not None:
        try:
            network = str(ipaddress.ip_network(network, strict=False))
        except ValueError:
            errors["ip"] = "Enter an IP address (203.0.113.7) or a network (203.0.113.0/24)."
    outcome = one("outcome")
    if outcome is not None and outcome not in OUTCOMES:
        errors["outcome"] = f"Outcome is one of {', '.join(OUTCOMES)}."
    since_day, until_day = one("from"), one("to")
    since = _day_start(since_day, zone, "from", errors)
    until = _day_start(until_day, zone, "to", errors)
    if until is not None:
        until += timedelta(days=1)  # the whole last day
    if since and until and since >= until:
        errors["to"] = "The end date is before the start date."
    actor = one("actor")
    if actor is not None and len(actor) > 254:
        errors["actor"] = "Enter an e-mail address or an account id."
    if errors:
        raise ValidationFailed(errors)
    return Filters(tenant_id=tenant_id, types=types, actor=actor, network=network,
                   since=since, until=until, outcome=outcome, since_day=since_day,
                   until_day=until_day)


def _uuid(value: str | None, name: str, errors: dict[str, str]) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        errors[name] = "Choose a practice from the list."
        return None


def _day_start(value: str | None, zone: ZoneInfo, name: str,
               errors: dict[str, str]) -> datetime | None:
    if value is None:
        return None
    try:
        day = datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        errors[name] = "Enter a date as YYYY-MM-DD."
        return None
    # Within these, a day's start in any zone and the day after it are still dates.
    if not FIRST_DAY <= day <= LAST_DAY:
        errors[name] = f"Enter a date from {FIRST_DAY} to {LAST_DAY}."
        return None
    return datetime.combine(day, time.min, tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True)
class Cursor:
    """A position in the newest-first order: the (created_at, id) of an entry."""

    created_at: datetime
    id: int

    def token(self) -> str:
        micros = (self.created_at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
        return f"{micros}.{self.id}"

    @classmethod
    def parse(cls, token: str | None) -> Cursor | None:
        if not token:
            return None
        try:
            micros, entry_id = (int(part) for part in token.split(".", 1))
            moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
        except (ValueError, OverflowError):
            raise ValidationFailed({"page": "That page link is not valid; start again from "
                                            "the newest entries."}) from None
        return cls(moment, entry_id)

    @classmethod
    def of(cls, entry: AuditEntry) -> Cursor:
        return cls(entry.created_at, entry.id)


@dataclass
class Page:
    entries: list[AuditEntry] = field(default_factory=list)
    older: Cursor | None = None  # the next page (older entries), if any
    newer: Cursor | None = None  # the page before (newer entries), if any


def conditions(session: Session, filters: Filters) -> list[sa.ColumnElement[bool]]:
    found: list[sa.ColumnElement[bool]] = []
    if filters.tenant_id is not None:
        found.append(AuditEntry.tenant_id == filters.tenant_id)
    if filters.types:
        found.append(AuditEntry.type.in_(filters.types))
    if filters.outcome:
        found.append(AuditEntry.outcome == filters.outcome)
    if filters.since is not None:
        found.append(AuditEntry.created_at >= filters.since)
    if filters.until is not None:
        found.append(AuditEntry.created_at < filters.until)
    if filters.network:
        found.append(_in_network(session, filters.network))
    if filters.actor:
        found.append(_by_actor(session, filters.actor))
    return found


def _in_network(session: Session, network: str) -> sa.ColumnElement[bool]:
    if session.get_bind().dialect.name == "postgresql":
        return AuditEntry.ip.op("<<=")(sa.cast(network, INET))  # uses the inet index
    return sa.func.ip_in_network(AuditEntry.ip, network) == 1


def _by_actor(session: Session, actor: str) -> sa.ColumnElement[bool]:
    """Entries an identity's accounts did, and those about the identity (failed logins …)."""
    try:
        identity_ids = {uuid.UUID(actor)}
        account_ids = set(identity_ids)
    except ValueError:
        identity_ids = set(session.execute(sa.select(Identity.id).where(
            Identity.email == actor.strip().lower())).scalars())
        account_ids = set()
    if identity_ids:
        rows = session.execute(sa.select(Account.id, Account.identity_id).where(
            sa.or_(Account.identity_id.in_(identity_ids), Account.id.in_(identity_ids)))).all()
        account_ids |= {row.id for row in rows}
        identity_ids |= {row.identity_id for row in rows}
    if not account_ids and not identity_ids:
        return sa.false()
    return sa.or_(AuditEntry.actor_account_id.in_(account_ids),
                  AuditEntry.subject.in_([f"identity:{i}" for i in identity_ids]))


def page(session: Session, filters: Filters, *, older_than: Cursor | None = None,
         newer_than: Cursor | None = None, size: int = PAGE_SIZE) -> Page:
    key = sa.tuple_(AuditEntry.created_at, AuditEntry.id)
    query = sa.select(AuditEntry).where(*conditions(session, filters))
    if newer_than is not None:
        rows = list(session.execute(
            query.where(key > sa.tuple_(newer_than.created_at, newer_than.id))
            .order_by(AuditEntry.created_at, AuditEntry.id).limit(size + 1)).scalars())
        more_newer = len(rows) > size
        entries = rows[:size][::-1]
        return Page(entries=entries,
                    older=Cursor.of(entries[-1]) if entries else None,
                    newer=Cursor.of(entries[0]) if entries and more_newer else None)
    if older_than is not None:
        query = query.where(key < sa.tuple_(older_than.created_at, older_than.id))
    rows = list(session.execute(
        query.order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc()).limit(size + 1)
    ).scalars())
    entries = rows[:size]
    return Page(entries=entries,
                older=Cursor.of(entries[-1]) if len(rows) > size else None,
                newer=Cursor.of(entries[0]) if entries and older_than is not None else None)


def entry(session: Session, entry_id: int) -> AuditEntry:
    """One entry the session may see; another practice's is NotFound (and audited as such)."""
    found: AuditEntry = owned(session, AuditEntry, entry_id)
    return found


def time_zone_of(session: Session, account_id: uuid.UUID) -> ZoneInfo:
    """The viewer's time zone, as they gave it in onboarding (UTC if they did not)."""
    data = session.execute(sa.select(OnboardingProgress.data).where(
        OnboardingProgress.account_id == account_id)).scalar()
    name = ((data or {}).get("PERSONAL_INFO") or {}).get("time_zone")
    try:
        return ZoneInfo(name) if name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")
