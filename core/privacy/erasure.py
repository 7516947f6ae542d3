"""Erasure of a person (GDPR article 17): asked for after re-authentication, carried out after a
7-day cooling-off period (cancellable; a reminder e-mail the day before), by a scheduled job on
the workers.

It erases everywhere the registry (core/privacy/registry.py) says their data lives: rows go,
the outbox's copies are scrubbed, the e-mail log keeps only what proves delivery, audit entries
are pseudonymised (chains still verify), files go from the file store and cached entries from
the cache; sessions end with their rows and the identity is closed (the address may sign up
again, as someone new). Records a practice must keep (core/privacy/holds.py) are kept
restricted, and erased by the same job once nothing keeps them.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core import clock
from core.audit.chain import PERSONAL_KEYS
from core.audit.models import AuditExport
from core.caching import (
    ACTIVITY,
    ONBOARDING,
    PRACTICE_HOMES,
    PROFILES,
    ROLES,
    SESSIONS,
    UNREAD,
    Invalidation,
    invalidate_after_commit,
)
from core.errors import Conflict, NotFound
from core.events.models import Event, HandlerRun
from core.events.types import EventType
from core.identity import links
from core.identity.models import (
    Account,
    AuthSession,
    Identity,
    Invitation,
    MfaFactor,
    RecoveryCode,
    Token,
)
from core.identity.sessions import SessionView
from core.mail.allowance import recipient_hash
from core.mail.for_events import send_for_event
from core.mail.models import MailLog
from core.notifications.models import Notification
from core.onboarding.models import OnboardingProgress
from core.pipeline.handlers import EMAIL_RETRY, HandlerContext, handler
from core.privacy import audit, holds, people
from core.privacy.export import ANSWER_WITHIN, add_practices
from core.privacy.models import (
    LegalHold,
    PrivacyRequest,
    RequestKind,
    RequestStatus,
    RestrictedRecord,
)
from core.privacy.reauth import confirm_identity
from core.privacy.registry import REGISTRY, Person
from core.scoping import crossing_tenants
from core.services import Services
from core.uow import UnitOfWork

COOLING_OFF = timedelta(days=7)
REMIND_BEFORE = timedelta(days=1)
ERASED = "[erased]"
BATCH = 50


# -- asking, cancelling ------------------------------------------------------------------------

def open_erasure(session: Session, identity_id: uuid.UUID) -> PrivacyRequest | None:
    return session.execute(sa.select(PrivacyRequest).where(
        PrivacyRequest.identity_id == identity_id, PrivacyRequest.kind == RequestKind.ERASURE,
        PrivacyRequest.status == RequestStatus.SCHEDULED)).scalar_one_or_none()


def accounts_of(session: Session, identity_id: uuid.UUID) -> list[Account]:
    with crossing_tenants(session):
        return list(session.execute(sa.select(Account).where(
            Account.identity_id == identity_id).order_by(Account.created_at)).scalars())


def kept_for(session: Session, identity_id: uuid.UUID, now: datetime) -> list[holds.Kept]:
    """What an erasure now would keep (the settings page and the e-mails say it)."""
    return holds.what_is_kept(session, accounts_of(session, identity_id), now)


def request_erasure(uow: UnitOfWork, view: SessionView, *, password: str) -> PrivacyRequest:
    session = uow.session
    identity = confirm_identity(session, view, password=password)
    if open_erasure(session, identity.id) is not None:
        raise Conflict("Your erasure is scheduled already; you can cancel it until it runs.")
    now = clock.now()
    request = PrivacyRequest(
        id=uuid.uuid4(), kind=RequestKind.ERASURE, status=RequestStatus.SCHEDULED,
        identity_id=identity.id, account_id=view.account_uuid, requested_at=now,
        due_at=now + ANSWER_WITHIN, scheduled_for=now + COOLING_OFF,
        details={"kept": [k.as_json() for k in kept_for(session, identity.id, now)]})
    session.add(request)
    add_practices(uow, request, people.person_of(session, identity.id))
    uow.record(EventType.ERASURE_REQUESTED, tenant_id=view.tenant_uuid,
               actor_account_id=view.account_uuid, subject=f"identity:{identity.id}",
               payload={"request_id": str(request.id),
                        "scheduled_for": request.scheduled_for.isoformat() if
                        request.scheduled_for else None})
    return request


def cancel_erasure(uow: UnitOfWork, view: SessionView) -> PrivacyRequest:
    request = open_erasure(uow.session, view.identity_uuid)
    if request is None:
        raise NotFound("No erasure is scheduled.")
    request.status, request.cancelled_at = RequestStatus.CANCELLED, clock.now()
    uow.record(EventType.ERASURE_CANCELLED, tenant_id=view.tenant_uuid,
               actor_account_id=view.account_uuid, subject=f"identity:{view.identity_uuid}",
               payload={"request_id": str(request.id)})
    return request


# -- e-mails -----------------------------------------------------------------------------------

def _mail(ctx: HandlerContext, template: str) -> None:
    session = ctx.uow.session
    request = session.get(PrivacyRequest, uuid.UUID(ctx.event.payload["request_id"]))
    if request is None or request.status != RequestStatus.SCHEDULED \
            or request.identity_id is None:
        return
    identity = session.get(Identity, request.identity_id)
    if identity is None:
        return
    kept = kept_for(session, identity.id, request.scheduled_for or clock.now())
    send_for_event(ctx, template, identity.email,
                   when=(request.scheduled_for or clock.now()).strftime("%d %B %Y, %H:%M UTC"),
                   kept=[k.describe() for k in kept],
                   settings_link=links.absolute(ctx.services.settings.public_url,
                                                links.SETTINGS) + "#privacy")


@handler(name="send_erasure_scheduled_email", queue="email", retry=EMAIL_RETRY,
         events={EventType.ERASURE_REQUESTED})
def send_erasure_scheduled_email(ctx: HandlerContext) -> None:
    _mail(ctx, "erasure_scheduled")


@handler(name="send_erasure_reminder_email", queue="email", retry=EMAIL_RETRY,
         events={EventType.ERASURE_REMINDER_DUE})
def send_erasure_reminder_email(ctx: HandlerContext) -> None:
    _mail(ctx, "erasure_reminder")


# -- the scheduled job -------------------------------------------------------------------------

def run_due(uow: UnitOfWork, services: Services) -> dict[str, int]:
    """Scheduled: reminders, then due erasures, then restricted records nothing keeps any more;
    each erasure in a transaction of its own."""
    done = {"reminded": record_due_reminders(uow), "erased": 0, "finished": 0}
    now = clock.now()
    due = uow.session.execute(sa.select(PrivacyRequest.id).where(
        PrivacyRequest.kind == RequestKind.ERASURE,
        PrivacyRequest.status == RequestStatus.SCHEDULED,
        PrivacyRequest.scheduled_for <= now).limit(BATCH)).scalars().all()
    uow.commit()
    for request_id in due:
        done["erased"] += erase(uow, services, request_id)
        uow.commit()
    done["finished"] = finish_restricted(uow, services)
    uow.commit()
    return done


def record_due_reminders(uow: UnitOfWork) -> int:
    now = clock.now()
    due = uow.session.execute(sa.select(PrivacyRequest).where(
        PrivacyRequest.kind == RequestKind.ERASURE,
        PrivacyRequest.status == RequestStatus.SCHEDULED,
        PrivacyRequest.reminded_at.is_(None),
        PrivacyRequest.scheduled_for <= now + REMIND_BEFORE,
        PrivacyRequest.scheduled_for > now).limit(BATCH)
        .with_for_update(skip_locked=True)).scalars().all()
    for request in due:
        request.reminded_at = now
        uow.record(EventType.ERASURE_REMINDER_DUE, subject=f"identity:{request.identity_id}",
                   payload={"request_id": str(request.id)})
    uow.commit()
    return len(due)


def erase(uow: UnitOfWork, services: Services, request_id: uuid.UUID) -> int:
    """Carry out one due erasure; 0 if it is not due (cancelled meanwhile, done already)."""
    session, now = uow.session, clock.now()
    with crossing_tenants(session):
        request = session.execute(sa.select(PrivacyRequest).where(
            PrivacyRequest.id == request_id).with_for_update()).scalar_one_or_none()
        if (request is None or request.status != RequestStatus.SCHEDULED
                or request.identity_id is None or (request.scheduled_for or now) > now):
            return 0
        try:
            person = people.person_of(session, request.identity_id)
        except NotFound:
            request.status, request.completed_at = RequestStatus.COMPLETED, now
            return 0
        pseudonym = request.pseudonym = request.pseudonym or uuid.uuid4()
        accounts = accounts_of(session, person.identity_id)
        kept = holds.what_is_kept(session, accounts, now)
        _restrict(uow, request, person, kept, pseudonym, now)
        needles = _needles(session, person) | set(person.former)
        _forget_cached(session, person)
        _delete_files(session, services, person)
        # The outbox first: locking their events waits for an audit batch writing them right
        # now, and keeps the next batches off them until this commits (scrubbed by then), so
        # no entry of theirs is written behind the pseudonymisation's back.
        _scrub_outbox(session, person, pseudonym, needles)
        entries = audit.pseudonymise(session, person, pseudonym)
        _scrub_mentions(session, person, needles)
        _forget_filtered_exports(session, services, person, needles)
        session.execute(sa.update(MailLog).where(MailLog.recipient_hash.in_(
            [recipient_hash(address) for address in person.addresses])).values(
            recipient_hash=recipient_hash(f"erased:{pseudonym}")))
        _delete_rows(session, person, kept)
        for other in session.execute(sa.select(PrivacyRequest).where(
                PrivacyRequest.identity_id == person.identity_id)).scalars():
            other.identity_id, other.account_id, other.pseudonym = None, None, pseudonym
        request.completed_at = now
        request.kept_until = max((k.until for k in kept if k.until), default=None)
        request.details = {"kept": [k.as_json() for k in kept],
                           "audit_entries_pseudonymised": entries}
        if kept:
            request.status = RequestStatus.RESTRICTED
        else:
            request.status = RequestStatus.COMPLETED
            _record_completed(uow, request, pseudonym, entries)
    return 1


def _record_completed(uow: UnitOfWork, request: PrivacyRequest, pseudonym: uuid.UUID,
                      entries: int) -> None:
    uow.record(EventType.ERASURE_COMPLETED, subject=f"pseudonym:{pseudonym}",
               payload={"request_id": str(request.id), "audit_entries_pseudonymised": entries})


def _needles(session: Session, person: Person) -> set[str]:
    """Their identifying strings, to scrub from free-form payloads: address, names, phone,
    IP addresses."""
    found = {person.email}
    for account in accounts_of(session, person.identity_id):
        found.add(account.display_name)
    for progress in session.execute(sa.select(OnboardingProgress).where(
            OnboardingProgress.account_id.in_(person.account_ids))).scalars():
        for answers in (progress.data or {}).values():
            if isinstance(answers, dict):
                found.update(str(answers[k]) for k in ("full_name", "phone")
                             if answers.get(k))
        if progress.terms_ip:
            found.add(progress.terms_ip)
    for ip in session.execute(sa.select(AuthSession.ip).where(
            AuthSession.identity_id == person.identity_id)).scalars():
        if ip:
            found.add(ip)
    return {needle for needle in found if len(needle) >= 3}


def scrubbed(value: Any, needles: set[str]) -> Any:
    if isinstance(value, str):
        return ERASED if any(needle in value for needle in needles) else value
    if isinstance(value, dict):
        return {k: scrubbed(v, needles) for k, v in value.items()}
    if isinstance(value, list):
        return [scrubbed(v, needles) for v in value]
    return value


def _scrub_outbox(session: Session, person: Person, pseudonym: uuid.UUID,
                  needles: set[str]) -> None:
    entry = next(e for e in REGISTRY if e.model is Event)
    accounts, subjects = set(person.account_ids), set(person.subjects)
    event_ids = []
    for event in session.execute(entry.rows(person).with_for_update()).scalars():
        event_ids.append(event.id)
        if event.actor_account_id in accounts:
            event.actor_account_id = pseudonym
        if event.subject in subjects:
            event.subject = f"pseudonym:{pseudonym}"
        event.ip = event.user_agent = None
        event.payload = scrubbed({key: value for key, value in (event.payload or {}).items()
                                  if key not in PERSONAL_KEYS}, needles)
    session.flush()
    if event_ids:
        session.execute(sa.update(HandlerRun).where(HandlerRun.event_id.in_(event_ids))
                        .values(last_error=None))


def _scrub_mentions(session: Session, person: Person, needles: set[str]) -> None:
    """Other people's inboxes name them ("New client: <name>"): those lines lose the name."""
    if not needles:
        return
    mentions = session.execute(sa.select(Notification).where(
        Notification.account_id.not_in(person.account_ids),
        sa.or_(*(column.contains(needle) for needle in needles
                 for column in (Notification.title, Notification.body))))).scalars().all()
    for notification in mentions:
        notification.title = scrubbed(notification.title, needles)
        notification.body = scrubbed(notification.body, needles)
        invalidate_after_commit(session, UNREAD.key(notification.account_id))
    session.flush()


def _forget_filtered_exports(session: Session, services: Services, person: Person,
                             needles: set[str]) -> None:
    """Audit exports someone filtered by their address: the filter loses it, and the file
    (their entries as they were before pseudonymisation) leaves the file store."""
    filtered = session.execute(sa.select(AuditExport).where(
        AuditExport.requested_by_account_id.not_in(person.account_ids),
        sa.or_(*(sa.cast(AuditExport.filters, sa.Text).contains(address)
                 for address in person.addresses)))).scalars().all()
    for export in filtered:
        if export.file_key:
            services.files.delete(export.file_key)
        export.file_key, export.filters = None, scrubbed(dict(export.filters), needles)
    session.flush()


def _forget_cached(session: Session, person: Person) -> None:
    keys: list[Invalidation] = [ROLES.key(person.identity_id),
                                PROFILES.key(person.identity_id),
                                ACTIVITY.key(person.identity_id)]
    keys += [key for account in person.account_ids
             for key in (ONBOARDING.key(account), UNREAD.key(account))]
    keys += [PRACTICE_HOMES.key(tenant) for tenant in person.tenant_ids]
    keys += [SESSIONS.key(id_hash) for id_hash in session.execute(
        sa.select(AuthSession.id_hash).where(
            AuthSession.identity_id == person.identity_id)).scalars()]
    invalidate_after_commit(session, *keys)


def _delete_files(session: Session, services: Services, person: Person) -> None:
    keys = list(session.execute(sa.select(AuditExport.file_key).where(
        AuditExport.requested_by_account_id.in_(person.account_ids),
        AuditExport.file_key.is_not(None))).scalars())
    for request in session.execute(sa.select(PrivacyRequest).where(
            PrivacyRequest.identity_id == person.identity_id,
            PrivacyRequest.file_key.is_not(None))).scalars():
        keys.append(request.file_key)
        request.file_key = None
    for key in keys:
        if key:
            services.files.delete(key)


def _delete_rows(session: Session, person: Person, kept: list[holds.Kept]) -> None:
    accounts = person.account_ids
    session.execute(sa.delete(Notification).where(Notification.account_id.in_(accounts)))
    session.execute(sa.delete(AuditExport).where(
        AuditExport.requested_by_account_id.in_(accounts)))
    session.execute(sa.delete(Invitation).where(sa.or_(
        Invitation.email.in_(person.addresses), Invitation.accepted_account_id.in_(accounts))))
    session.execute(sa.delete(Token).where(Token.identity_id == person.identity_id))
    session.execute(sa.delete(MfaFactor).where(MfaFactor.identity_id == person.identity_id))
    session.execute(sa.delete(RecoveryCode).where(RecoveryCode.identity_id == person.identity_id))
    session.execute(sa.delete(AuthSession).where(AuthSession.identity_id == person.identity_id))
    session.execute(sa.delete(OnboardingProgress).where(
        OnboardingProgress.account_id.in_(accounts)))
    session.execute(sa.delete(Account).where(Account.identity_id == person.identity_id))
    session.execute(sa.delete(Identity).where(Identity.id == person.identity_id))
    holding = {k.hold_id for k in kept if k.hold_id}
    session.execute(sa.update(LegalHold).where(
        LegalHold.account_id.in_(accounts), LegalHold.id.not_in(holding) if holding
        else sa.true()).values(reason=ERASED))
    session.expire_all()


def _restrict(uow: UnitOfWork, request: PrivacyRequest, person: Person,
              kept: list[holds.Kept], pseudonym: uuid.UUID, now: datetime) -> None:
    """Snapshot what each practice must keep, before the live rows go."""
    if not kept:
        return
    data = people.everything(uow.session, person)
    for item in kept:
        snapshot = {
            "identities": data["identities"],
            "accounts": [r for r in data["accounts"] if r["id"] == str(item.account_id)],
            "onboarding_progress": [r for r in data["onboarding_progress"]
                                    if r["account_id"] == str(item.account_id)],
            "invitations": [r for r in data["invitations"]
                            if r["tenant_id"] == str(item.tenant_id)],
        }
        uow.session.add(RestrictedRecord(
            id=uuid.uuid4(), request_id=request.id, tenant_id=item.tenant_id,
            account_id=item.account_id, hold_id=item.hold_id, data=snapshot, created_at=now,
            kept_until=item.until))
        uow.record(EventType.DATA_RESTRICTED, tenant_id=item.tenant_id,
                   subject=f"pseudonym:{pseudonym}",
                   payload={"request_id": str(request.id),
                            "until": item.until.isoformat() if item.until else None,
                            "retention_months": item.retention_months,
                            "hold_id": str(item.hold_id) if item.hold_id else None})
    uow.session.flush()


def finish_restricted(uow: UnitOfWork, services: Services) -> int:
    """Erase restricted records nothing keeps any more; complete their erasures."""
    session, now = uow.session, clock.now()
    finished = 0
    with crossing_tenants(session):
        records = session.execute(sa.select(RestrictedRecord).order_by(
            RestrictedRecord.created_at).limit(BATCH * 4)).scalars().all()
        touched: set[uuid.UUID] = set()
        for record in records:
            if holds.may_finish(session, record, now):
                if record.hold_id is not None:
                    session.execute(sa.update(LegalHold).where(
                        LegalHold.id == record.hold_id).values(reason=ERASED))
                touched.add(record.request_id)
                session.delete(record)
                finished += 1
        session.flush()
        for request_id in touched:
            left = session.execute(sa.select(sa.func.count()).select_from(
                RestrictedRecord).where(RestrictedRecord.request_id == request_id)
            ).scalar_one()
            request = session.get(PrivacyRequest, request_id)
            if left == 0 and request is not None and request.status == \
                    RequestStatus.RESTRICTED:
                request.status, request.completed_at = RequestStatus.COMPLETED, now
                assert request.pseudonym is not None
                _record_completed(uow, request, request.pseudonym,
                                  int((request.details or {}).get(
                                      "audit_entries_pseudonymised", 0)))
    return finished
