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


_LOG: sa.Table = MailLog.__table__  # type: ignore[assignment]
# Built once, on the table rather than the ORM class: building them per e-mail, and loading
# ORM objects, cost a worker more CPU than the database spent running them.
_LOCK_RECIPIENT = sa.select(sa.func.pg_advisory_xact_lock(
    sa.func.hashtextextended(sa.bindparam("key"), 0)))
_EARLIER = _LOG.alias("earlier")
_HISTORY = sa.select(
    # What an earlier attempt at this very e-mail decided: a retry counts once, not per attempt.
    sa.select(_EARLIER.c.status)
    .where(_EARLIER.c.recipient_hash == sa.bindparam("key"),
           _EARLIER.c.kind == sa.bindparam("kind"),
           _EARLIER.c.event_id == sa.bindparam("event_id"))
    .limit(1).correlate(None).scalar_subquery(),
    sa.func.count().filter(_LOG.c.kind == sa.bindparam("kind"),
                           _LOG.c.created_at > sa.bindparam("since_kind")),
    sa.func.count().filter(_LOG.c.created_at > sa.bindparam("since_any")),
).where(_LOG.c.recipient_hash == sa.bindparam("key"), _LOG.c.status == "sent",
        _LOG.c.created_at > sa.bindparam("since"))
_RECORD = sa.insert(_LOG)


@dataclass(frozen=True)
class Decision:
    send: bool
    # Why not: "3 password_reset e-mail(s) to this address in the last 1:00:00"; "" to send.
    reason: str = ""
    # Decided by an earlier attempt at the same e-mail (a retry).
    earlier: bool = False


def decide(session: Session, address: str, kind: str, event_id: uuid.UUID) -> Decision:
    """Whether event `event_id`'s `kind` e-mail goes to `address`, recorded in `mail_log` unless
    an earlier attempt at it decided already. On PostgreSQL decided under a transaction-scoped
    advisory lock per recipient, so two workers cannot both take the last e-mail of an
    allowance."""
    key = recipient_hash(address)
    if session.get_bind().dialect.name == "postgresql":
        # Its own statement: a statement that waited for the lock would count with a snapshot
        # taken before the other worker's e-mail was committed.
        session.execute(_LOCK_RECIPIENT, {"key": key})
    allowance = BY_KIND.get(kind, DEFAULT)
    now = clock.now()
    since_kind, since_any = now - allowance.per, now - IN_ALL.per
    earlier, of_kind, in_all = session.execute(_HISTORY, {
        "key": key, "kind": kind, "event_id": event_id, "since_kind": since_kind,
        "since_any": since_any, "since": min(since_kind, since_any)}).one()
    if earlier is not None:
        return Decision(send=earlier == "sent", earlier=True)
    reason = ""
    if of_kind >= allowance.count:
        reason = f"{of_kind} {kind} e-mail(s) to this address in the last {allowance.per}"
    elif in_all >= IN_ALL.count:
        reason = f"{in_all} e-mails to this address in the last {IN_ALL.per}"
    session.execute(_RECORD, {
        "recipient_hash": key, "kind": kind, "event_id": event_id,
        "status": "suppressed" if reason else "sent", "created_at": now})
    return Decision(send=not reason, reason=reason)
