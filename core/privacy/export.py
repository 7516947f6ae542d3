"""A copy of everything about a person (GDPR articles 15 and 20): a ZIP of JSON, one file per
table that holds their data (core/privacy/registry.py), and a readable HTML summary.

Asked for from the settings page (after re-authentication), built by a worker into the file
store, announced in the inbox and by e-mail with a link that is signed, works for that person
alone, once, for 72 hours.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import io
import json
import uuid
import zipfile
from datetime import datetime, timedelta
from typing import IO, Any

import sqlalchemy as sa

from core import clock
from core.errors import Conflict, NotFound
from core.events.types import EventType
from core.identity import links
from core.identity.sessions import SessionView
from core.mail.for_events import send_for_event
from core.notifications.service import notify
from core.pipeline.handlers import EMAIL_RETRY, HandlerContext, RetryPolicy, handler
from core.privacy import people
from core.privacy.models import PrivacyRequest, PrivacyRequestPractice, RequestKind, RequestStatus
from core.privacy.reauth import confirm_identity
from core.privacy.registry import REGISTRY, Person
from core.scoping import crossing_tenants
from core.uow import UnitOfWork

LINK_LIFETIME = timedelta(hours=72)
ANSWER_WITHIN = timedelta(days=30)
EXPORT_READY = "personal_export_ready"
EXPORT_RETRY = RetryPolicy(max_retries=5, min_backoff_ms=10_000, max_backoff_ms=600_000,
                           time_limit_ms=30 * 60_000)
NOT_VALID = "This download link is not valid, has expired or was used already; ask for a new copy."


def request_export(uow: UnitOfWork, view: SessionView, *, password: str) -> PrivacyRequest:
    session = uow.session
    identity = confirm_identity(session, view, password=password)
    open_one = session.execute(sa.select(PrivacyRequest.id).where(
        PrivacyRequest.identity_id == identity.id, PrivacyRequest.kind == RequestKind.EXPORT,
        PrivacyRequest.status == RequestStatus.QUEUED)).first()
    if open_one is not None:
        raise Conflict("Your copy is being prepared already; it arrives in your inbox shortly.")
    now = clock.now()
    person = people.person_of(session, identity.id)
    request = PrivacyRequest(id=uuid.uuid4(), kind=RequestKind.EXPORT,
                             status=RequestStatus.QUEUED, identity_id=identity.id,
                             account_id=view.account_uuid, requested_at=now,
                             due_at=now + ANSWER_WITHIN, details={})
    session.add(request)
    add_practices(uow, request, person)
    uow.record(EventType.DATA_EXPORT_REQUESTED, tenant_id=view.tenant_uuid,
               actor_account_id=view.account_uuid, subject=f"identity:{identity.id}",
               payload={"request_id": str(request.id)})
    return request


def add_practices(uow: UnitOfWork, request: PrivacyRequest, person: Person) -> None:
    with crossing_tenants(uow.session):
        for tenant_id in person.tenant_ids:
            uow.session.add(PrivacyRequestPractice(request_id=request.id, tenant_id=tenant_id))
        uow.session.flush()


def file_key(request: PrivacyRequest) -> str:
    return f"privacy-exports/{request.id}.zip"


def write_zip(session: Any, person: Person, out: IO[bytes], now: datetime) -> dict[str, int]:
    """Write the ZIP; returns how many records each table gave."""
    data = people.everything(session, person)
    counts = {table: len(records) for table, records in data.items()}
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for table, records in data.items():
            archive.writestr(f"{table}.json", json.dumps(records, indent=2, ensure_ascii=False,
                                                         sort_keys=True))
        archive.writestr("manifest.json", json.dumps(
            {"identity_id": str(person.identity_id), "created_at": now.isoformat(),
             "files": {f"{table}.json": count for table, count in counts.items()}},
            indent=2))
        archive.writestr("summary.html", summary_html(person, data, now))
    return counts


def summary_html(person: Person, data: dict[str, list[dict[str, Any]]], now: datetime) -> str:
    esc = html.escape
    parts = [
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>Your data — {esc(person.email)}</title></head><body>",
        f"<h1>Everything we hold about {esc(person.email)}</h1>",
        f"<p>Made {esc(now.strftime('%d %B %Y, %H:%M UTC'))}. Each section below is also in "
        "this archive as a JSON file of the same name, complete.</p>"]
    for entry in REGISTRY:
        records = data.get(entry.table, [])
        parts.append(f"<h2>{esc(entry.table)}.json ({len(records)})</h2>"
                     f"<p>{esc(entry.explains)}</p>")
        if not records:
            continue
        columns = sorted({key for record in records for key in record})
        parts.append("<table border=\"1\" cellpadding=\"4\"><thead><tr>"
                     + "".join(f"<th scope=\"col\">{esc(c)}</th>" for c in columns)
                     + "</tr></thead><tbody>")
        for record in records[:200]:
            cells = (record.get(c) for c in columns)
            parts.append("<tr>" + "".join(
                f"<td>{esc(json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else '' if v is None else str(v))}</td>"  # noqa: E501
                for v in cells) + "</tr>")
        parts.append("</tbody></table>")
        if len(records) > 200:
            parts.append(f"<p>… and {len(records) - 200} more in {esc(entry.table)}.json.</p>")
    parts.append("</body></html>")
    return "".join(parts)


@handler(name="build_personal_export", queue="exports", events={EventType.DATA_EXPORT_REQUESTED},
         retry=EXPORT_RETRY)
def build_personal_export(ctx: HandlerContext) -> None:
    """Build the ZIP into the file store, audit it and tell the person (inbox now; the e-mail
    follows DATA_EXPORTED). A retry writes the whole file again under the same key."""
    session, services = ctx.uow.session, ctx.services
    request = session.get(PrivacyRequest, uuid.UUID(ctx.event.payload["request_id"]))
    if request is None or request.status != RequestStatus.QUEUED or request.identity_id is None:
        return
    try:
        person = people.person_of(session, request.identity_id)
    except NotFound:
        return  # erased meanwhile
    now = clock.now()
    digest = hashlib.sha256()
    buffer = io.BytesIO()
    counts = write_zip(session, person, buffer, now)
    body = buffer.getvalue()
    digest.update(body)
    key = file_key(request)
    with services.files.writer(key) as out:
        out.write(body)
    request.status, request.file_key, request.sha256 = (RequestStatus.READY, key,
                                                        digest.hexdigest())
    request.completed_at, request.link_expires_at = now, now + LINK_LIFETIME
    request.details = {"files": counts}
    ctx.uow.record(EventType.DATA_EXPORTED, tenant_id=ctx.event.tenant_id,
                   actor_account_id=request.account_id, subject=f"identity:{person.identity_id}",
                   payload={"request_id": str(request.id), "sha256": request.sha256,
                            "records": sum(counts.values())})
    if request.account_id is not None:
        notify(ctx.uow, services.notifications, account_id=request.account_id,
               tenant_id=ctx.event.tenant_id, kind=EXPORT_READY,
               title="Your copy of your data is ready",
               body="The download link works once, for you alone, for 72 hours.",
               link=download_path(services.settings.secret_key, request),
               source_event_id=ctx.event.id)


@handler(name="send_personal_export_email", queue="email", retry=EMAIL_RETRY,
         events={EventType.DATA_EXPORTED})
def send_personal_export_email(ctx: HandlerContext) -> None:
    session = ctx.uow.session
    request = session.get(PrivacyRequest, uuid.UUID(ctx.event.payload["request_id"]))
    if request is None or request.identity_id is None or request.status != RequestStatus.READY:
        return
    try:
        person = people.person_of(session, request.identity_id)
    except NotFound:
        return
    settings = ctx.services.settings
    send_for_event(ctx, EXPORT_READY, person.email,
                   link=links.absolute(settings.public_url,
                                       download_path(settings.secret_key, request)),
                   expires=(request.link_expires_at or clock.now()).strftime(
                       "%d %B %Y, %H:%M UTC"))


# -- the signed, single-use link -------------------------------------------------------------

def _signature(secret: str, request_id: uuid.UUID, identity_id: uuid.UUID, expires: int) -> str:
    message = f"privacy-export|{request_id}|{identity_id}|{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def download_path(secret: str, request: PrivacyRequest) -> str:
    assert request.identity_id is not None and request.link_expires_at is not None
    expires = int(request.link_expires_at.timestamp())
    signature = _signature(secret, request.id, request.identity_id, expires)
    return f"/privacy/exports/{request.id}/download?expires={expires}&signature={signature}"


def open_download(uow: UnitOfWork, secret: str, request_id: uuid.UUID, view: SessionView,
                  expires: str, signature: str) -> PrivacyRequest:
    """The export behind a link, for the person it was made for, once, while it is valid;
    otherwise NotFound (a link says nothing about other people's exports)."""
    try:
        expiry = int(expires)
    except ValueError:
        raise NotFound(NOT_VALID) from None
    expected = _signature(secret, request_id, view.identity_uuid, expiry)
    if not hmac.compare_digest(expected, signature) or expiry < clock.now().timestamp():
        raise NotFound(NOT_VALID)
    request = uow.session.execute(
        sa.select(PrivacyRequest).where(PrivacyRequest.id == request_id)
        .with_for_update()).scalar_one_or_none()
    if (request is None or request.status != RequestStatus.READY or request.file_key is None
            or request.identity_id != view.identity_uuid):
        raise NotFound(NOT_VALID)
    request.status, request.downloaded_at = RequestStatus.DOWNLOADED, clock.now()
    uow.record(EventType.DATA_EXPORT_DOWNLOADED, tenant_id=view.tenant_uuid,
               actor_account_id=view.account_uuid, subject=f"identity:{view.identity_uuid}",
               payload={"request_id": str(request.id)})
    return request
