"""Where a person's data lives: every table with personal columns, which rows are theirs, and
what an erasure does to them. The export and the erasure both walk this table, and a test
fails when a model gains personal-looking columns without an entry here (or in NOT_PERSONAL,
with the reason).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from core.audit.models import AuditEntry, AuditExport
from core.events.models import Event, HandlerRun
from core.identity.models import (
    Account,
    AuthSession,
    Identity,
    Invitation,
    MfaFactor,
    RecoveryCode,
    Token,
)
from core.mail.allowance import recipient_hash
from core.mail.models import MailLog
from core.notifications.models import Notification
from core.onboarding.models import OnboardingProgress
from core.privacy.models import LegalHold, PrivacyRequest, RestrictedRecord


@dataclass(frozen=True)
class Person:
    """One identity and every role account it holds, in every practice."""

    identity_id: uuid.UUID
    email: str
    account_ids: tuple[uuid.UUID, ...]
    tenant_ids: tuple[uuid.UUID, ...]
    # Addresses the login had before (or was being moved to): theirs as much as `email`.
    former: tuple[str, ...] = ()

    @property
    def addresses(self) -> tuple[str, ...]:
        return (self.email, *self.former)

    @property
    def subjects(self) -> tuple[str, ...]:
        """How events and audit entries name them as their subject."""
        return (f"identity:{self.identity_id}",
                *(f"account:{account}" for account in self.account_ids))


class Erase(StrEnum):
    DELETE = "delete"  # the rows go
    PSEUDONYMISE = "pseudonymise"  # kept; personal columns replaced by the pseudonym or cut
    REHASH = "rehash"  # kept (proof of delivery); the address hash becomes the pseudonym's
    SCRUB = "scrub"  # kept; the personal columns are emptied


@dataclass(frozen=True)
class PersonalTable:
    model: type[Any]
    columns: tuple[str, ...]  # the personal columns
    erase: Erase
    rows: Callable[[Person], sa.Select[Any]]  # the person's rows
    explains: str  # for the export's summary: what this is

    @property
    def table(self) -> str:
        return str(self.model.__tablename__)


def _in(column: Any, values: tuple[Any, ...]) -> Any:
    return column.in_(values) if values else sa.false()


def _their_events(p: Person) -> Any:
    return sa.or_(_in(Event.actor_account_id, p.account_ids), _in(Event.subject, p.subjects),
                  *(sa.cast(Event.payload, sa.Text).contains(a) for a in p.addresses))


REGISTRY: tuple[PersonalTable, ...] = (
    PersonalTable(Identity, ("email", "password_hash"), Erase.DELETE,
                  lambda p: sa.select(Identity).where(Identity.id == p.identity_id),
                  "Your login: e-mail address, when it was confirmed, sign-in history."),
    PersonalTable(Account, ("display_name",), Erase.DELETE,
                  lambda p: sa.select(Account).where(Account.identity_id == p.identity_id),
                  "Your role accounts (client, therapist, admin) and their practices."),
    PersonalTable(OnboardingProgress, ("data", "terms_ip"), Erase.DELETE,
                  lambda p: sa.select(OnboardingProgress).where(
                      _in(OnboardingProgress.account_id, p.account_ids)),
                  "Your profile and set-up answers (name, phone, time zone, …)."),
    PersonalTable(AuthSession, ("ip", "user_agent"), Erase.DELETE,
                  lambda p: sa.select(AuthSession).where(
                      AuthSession.identity_id == p.identity_id),
                  "Your sign-in sessions: when, from which address and browser."),
    PersonalTable(MfaFactor, ("identity_id", "name", "credential_id", "public_key"),
                  Erase.DELETE,
                  lambda p: sa.select(MfaFactor).where(MfaFactor.identity_id == p.identity_id),
                  "Your second factors (authenticator apps, passkeys): their names and when "
                  "they were added and used; never an app's secret."),
    PersonalTable(RecoveryCode, ("identity_id",), Erase.DELETE,
                  lambda p: sa.select(RecoveryCode).where(
                      RecoveryCode.identity_id == p.identity_id),
                  "Your recovery codes: when they were made and used; never the codes."),
    PersonalTable(Token, ("new_email",), Erase.DELETE,
                  lambda p: sa.select(Token).where(Token.identity_id == p.identity_id),
                  "Links we sent you (confirmation, password reset); never the secret."),
    PersonalTable(Invitation, ("email",), Erase.DELETE,
                  lambda p: sa.select(Invitation).where(sa.or_(
                      Invitation.email.in_(p.addresses),
                      _in(Invitation.accepted_account_id, p.account_ids))),
                  "Invitations to join a practice sent to your address."),
    PersonalTable(Notification, ("title", "body"), Erase.DELETE,
                  lambda p: sa.select(Notification).where(
                      _in(Notification.account_id, p.account_ids)),
                  "Your inbox."),
    PersonalTable(AuditExport, ("filters",), Erase.DELETE,
                  lambda p: sa.select(AuditExport).where(
                      _in(AuditExport.requested_by_account_id, p.account_ids)),
                  "Audit log exports you asked for."),
    PersonalTable(PrivacyRequest, ("identity_id",), Erase.PSEUDONYMISE,
                  lambda p: sa.select(PrivacyRequest).where(
                      PrivacyRequest.identity_id == p.identity_id),
                  "Your requests for a copy of your data or for its erasure."),
    PersonalTable(Event, ("actor_account_id", "subject", "ip", "user_agent", "payload"),
                  Erase.PSEUDONYMISE, lambda p: sa.select(Event).where(_their_events(p)),
                  "What you did and what was done for you, as the system recorded it."),
    PersonalTable(HandlerRun, ("last_error",), Erase.SCRUB,
                  lambda p: sa.select(HandlerRun).where(HandlerRun.event_id.in_(
                      sa.select(Event.id).where(_their_events(p)))),
                  "What the system did in the background on those events (e-mails sent …)."),
    PersonalTable(AuditEntry, ("actor_account_id", "subject", "ip", "user_agent", "metadata"),
                  Erase.PSEUDONYMISE,
                  lambda p: sa.select(AuditEntry).where(sa.or_(
                      _in(AuditEntry.actor_account_id, p.account_ids),
                      _in(AuditEntry.subject, p.subjects))),
                  "Your entries in the audit log (kept, pseudonymised, after an erasure)."),
    PersonalTable(MailLog, ("recipient_hash",), Erase.REHASH,
                  lambda p: sa.select(MailLog).where(
                      MailLog.recipient_hash.in_([recipient_hash(a) for a in p.addresses])),
                  "E-mails we sent you (which kind and when; never their text)."),
    PersonalTable(LegalHold, ("reason",), Erase.SCRUB,
                  lambda p: sa.select(LegalHold).where(_in(LegalHold.account_id,
                                                           p.account_ids)),
                  "Legal holds a practice placed on your records."),
    PersonalTable(RestrictedRecord, ("data",), Erase.DELETE,
                  lambda p: sa.select(RestrictedRecord).where(
                      _in(RestrictedRecord.account_id, p.account_ids)),
                  "Records a practice must keep, restricted."),
)

# Tables with personal-looking column names that hold nobody's personal data.
NOT_PERSONAL: dict[str, str] = {
    "tenants": "a practice's name and settings (a business, not a person)",
    "plans": "plan names",
    "metric_rollups": "metric names",
    "metric_points": "aggregate figures; dimensions are event types and stages, never people",
    "dead_letters": "broker messages carry event ids only; the event is registered",
    "audit_verifications": "chain ids and sequence numbers of problems found",
    "audit_checkpoints": "chain heads (hashes)",
    "audit_archives": "file keys and row counts of archived months",
    "privacy_request_practices": "request and practice ids",
    "audit_pseudonymise_permits": "an empty marker row during pseudonymisation",
}


def by_table() -> dict[str, PersonalTable]:
    return {entry.table: entry for entry in REGISTRY}
