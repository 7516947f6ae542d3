"""How many e-mails one address may receive: whoever asks, an inbox is never flooded.

Every e-mail an event asks for is counted against its recipient, per kind and in all; past the
allowance it is not sent but recorded as suppressed. Counts come from `mail_log`, so every worker
process sees the same ones; on PostgreSQL a transaction-scoped advisory lock per recipient makes
two workers mailing one address take turns, so neither can slip past the allowance.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core import clock
from core.mail.models import MailLog

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Allowance:
    count: int
    per: timedelta


# Per kind: what a person could plausibly need, not what a script can ask for.
BY_KIND: dict[str, Allowance] = {
    "verify_email": Allowance(5, HOUR),
    "password_reset": Allowance(3, HOUR),
    "set_password": Allowance(3, HOUR),
    "password_changed": Allowance(5, HOUR),
    "signup_exists": Allowance(3, DAY),
    "account_locked": Allowance(3, DAY),
    "invitation": Allowance(3, DAY),
    # The reminder job itself sends at most one a day and three in all.
    "onboarding_reminder": Allowance(3, DAY),
    "test_email": Allowance(10, HOUR),
    "health_incident": Allowance(24, DAY),  # an admin hears of every outage, not of a flood
}
DEFAULT = Allowance(5, DAY)
# Every kind together.
IN_ALL = Allowance(20, HOUR)


def recipient_hash(address: str) -> str:
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()


def over_allowance(session: Session, address: str, kind: str) -> str | None:
    """Why one more `kind` e-mail to `address` would be too many, or None."""
    key = recipient_hash(address)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.select(sa.func.pg_advisory_xact_lock(
            sa.func.hashtextextended(key, 0))))
    allowance = BY_KIND.get(kind, DEFAULT)
    now = clock.now()
    since_kind, since_any = now - allowance.per, now - IN_ALL.per
    sent = MailLog.recipient_hash == key
    of_kind, in_all = session.execute(
        sa.select(
            sa.func.count().filter(MailLog.kind == kind, MailLog.created_at > since_kind),
            sa.func.count().filter(MailLog.created_at > since_any),
        ).where(sent, MailLog.status == "sent",
                MailLog.created_at > min(since_kind, since_any))
    ).one()
    if of_kind >= allowance.count:
        return f"{of_kind} {kind} e-mail(s) to this address in the last {allowance.per}"
    if in_all >= IN_ALL.count:
        return f"{in_all} e-mails to this address in the last {IN_ALL.per}"
    return None


def record(session: Session, address: str, kind: str, event_id: uuid.UUID | None,
           status: str) -> None:
    session.add(MailLog(id=uuid.uuid4(), recipient_hash=recipient_hash(address), kind=kind,
                        event_id=event_id, status=status, created_at=clock.now()))


def earlier_decision(session: Session, address: str, kind: str, event_id: uuid.UUID) -> str | None:
    """What an earlier attempt at this event's `kind` e-mail to `address` recorded (sent or
    suppressed), or None: a retry counts against the allowance once, not once per attempt."""
    return session.execute(sa.select(MailLog.status).where(
        MailLog.recipient_hash == recipient_hash(address), MailLog.kind == kind,
        MailLog.event_id == event_id).limit(1)).scalar_one_or_none()


def recipients_of(session: Session, event_id: uuid.UUID, kind: str) -> set[str]:
    """The recipient hashes a `kind` e-mail for this event already went to."""
    return set(session.execute(sa.select(MailLog.recipient_hash).where(
        MailLog.event_id == event_id, MailLog.kind == kind, MailLog.status == "sent")).scalars())
