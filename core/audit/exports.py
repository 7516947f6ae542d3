"""Exports of the audit log: CSV or JSON Lines, the filtered view oldest first.

Up to `audit_stream_export_limit` entries stream straight from the page. A larger export is
requested (an AUDIT_EXPORT_REQUESTED event) and written by a worker into the file store; the
requester then gets a live notification with a download link that is signed, theirs alone and
good for 24 hours. Every export is audited as AUDIT_EXPORTED, with its filters.

An export covers what was recorded before it was asked for: entries written meanwhile are left
out, so a retried export writes exactly the same file.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core import clock
from core.audit.chain import timestamp
from core.audit.models import AuditEntry, AuditExport
from core.audit.viewer import Filters, conditions
from core.errors import NotFound, ValidationFailed
from core.events.types import EventType
from core.notifications.service import notify
from core.pipeline.handlers import HandlerContext, RetryPolicy, handler
from core.uow import UnitOfWork

FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}
LINK_LIFETIME = timedelta(hours=24)
READ_BATCH = 2000
COLUMNS = ("id", "recorded_at", "occurred_at", "type", "outcome", "practice_id",
           "actor_account_id", "subject", "ip", "user_agent", "request_id", "metadata",
           "event_id", "chain_id", "seq", "prev_hash", "hash")
# Spreadsheets run a cell that starts with one of these as a formula (CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
EXPORT_READY = "audit_export_ready"
# Long exports: one attempt may write millions of rows; a killed one starts again.
EXPORT_RETRY = RetryPolicy(max_retries=5, min_backoff_ms=10_000, max_backoff_ms=600_000,
                           time_limit_ms=60 * 60_000)


@dataclass(frozen=True)
class Scope:
    """Who exports, and which practice they are confined to (None: an admin, every one)."""

    account_id: uuid.UUID | None
    tenant_id: uuid.UUID | None


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValidationFailed({"format": "Choose CSV or JSON Lines."})
    return fmt


def confined(filters: Filters, scope: Scope) -> Filters:
    return replace(filters, tenant_id=scope.tenant_id) if scope.tenant_id else filters


def count(session: Session, filters: Filters, *, limit: int | None = None) -> int:
    """How many entries the filters select (at most `limit` + 1, when given: enough to tell a
    small export from a large one without counting millions)."""
    inner = sa.select(AuditEntry.id).where(*conditions(session, filters))
    if limit is not None:
        inner = inner.limit(limit + 1)
    return int(session.execute(sa.select(sa.func.count()).select_from(inner.subquery()))
               .scalar_one())


_FIELDS = ("id", "created_at", "occurred_at", "type", "outcome", "tenant_id",
           "actor_account_id", "subject", "ip", "user_agent", "request_id", "details",
           "event_id", "chain_id", "seq", "prev_hash", "hash")


def entries(session: Session, filters: Filters, *, batch: int = READ_BATCH) -> Iterator[Any]:
    """The selected entries (rows of their fields, not tracked by the session), oldest first,
    read in keyset batches: no cursor held open across a million rows."""
    key = sa.tuple_(AuditEntry.created_at, AuditEntry.id)
    query = (sa.select(*(getattr(AuditEntry, name) for name in _FIELDS))
             .where(*conditions(session, filters))
             .order_by(AuditEntry.created_at, AuditEntry.id).limit(batch))
    last: tuple[datetime, int] | None = None
    while True:
        page = query if last is None else query.where(key > sa.tuple_(*last))
        rows = session.execute(page).all()
        yield from rows
        if len(rows) < batch:
            return
        last = (rows[-1].created_at, rows[-1].id)


def as_record(entry: Any) -> dict[str, Any]:
    """An entry (or a row of its fields) as the export writes it."""
    return {
        "id": entry.id, "recorded_at": timestamp(entry.created_at),
        "occurred_at": timestamp(entry.occurred_at), "type": entry.type,
        "outcome": entry.outcome,
        "practice_id": str(entry.tenant_id) if entry.tenant_id else None,
        "actor_account_id": str(entry.actor_account_id) if entry.actor_account_id else None,
        "subject": entry.subject, "ip": entry.ip, "user_agent": entry.user_agent,
        "request_id": entry.request_id, "metadata": entry.details,
        "event_id": str(entry.event_id), "chain_id": str(entry.chain_id), "seq": entry.seq,
        "prev_hash": bytes(entry.prev_hash).hex(), "hash": bytes(entry.hash).hex(),
    }


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False) if isinstance(
        value, dict) else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def render(records: Iterable[dict[str, Any]], fmt: str) -> Iterator[bytes]:
    """The export's bytes, a few hundred entries per chunk."""
    buffer = io.StringIO()
    out = csv.writer(buffer, lineterminator="\r\n") if fmt == "csv" else None
    if out is not None:
        out.writerow(COLUMNS)
    for number, record in enumerate(records, 1):
        if out is not None:
            out.writerow([_cell(record[column]) for column in COLUMNS])
        else:
            buffer.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
        if number % 500 == 0:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


@dataclass
class Written:
    rows: int = 0
    sha256: str = ""


PROGRESS_EVERY = 1000


def write(session: Session, filters: Filters, fmt: str, out: IO[bytes],
          progress: Callable[[int], None] | None = None) -> Written:
    """Write the export into `out`; `progress(n)` hears of every n entries written."""
    written = Written()
    digest = hashlib.sha256()

    def counted() -> Iterator[dict[str, Any]]:
        for entry in entries(session, filters):
            written.rows += 1
            if progress is not None and written.rows % PROGRESS_EVERY == 0:
                progress(PROGRESS_EVERY)
            yield as_record(entry)
        if progress is not None:
            progress(written.rows % PROGRESS_EVERY)

    for chunk in render(counted(), fmt):
        digest.update(chunk)
        out.write(chunk)
    written.sha256 = digest.hexdigest()
    return written


# Filters that name a person (an e-mail address, an IP network): recorded outside the chain, so
# that erasing that person can remove them from the entry (core/audit/chain.PERSONAL_KEYS).
PERSONAL_FILTERS = ("actor", "ip")


def filters_payload(filters: Filters) -> dict[str, Any]:
    described = filters.describe()
    personal = {key: described[key] for key in PERSONAL_FILTERS if described.get(key)}
    payload: dict[str, Any] = {"filters": {key: value for key, value in described.items()
                                           if key not in PERSONAL_FILTERS}}
    if personal:
        payload["personal"] = personal
    return payload


def record_exported(uow: UnitOfWork, scope: Scope, filters: Filters, fmt: str, rows: int,
                    via: str, **extra: Any) -> None:
    uow.record(EventType.AUDIT_EXPORTED, tenant_id=scope.tenant_id,
               actor_account_id=scope.account_id, subject="audit:export",
               payload={**filters_payload(filters), "format": fmt, "rows": rows, "via": via,
                        **extra})


def as_of_now(filters: Filters) -> Filters:
    """Bound the export to what is recorded now, so that every retry writes the same file."""
    now = clock.now()
    return filters if filters.until is not None and filters.until <= now else replace(
        filters, until=now)


def request_export(uow: UnitOfWork, scope: Scope, filters: Filters, fmt: str) -> AuditExport:
    """Queue a large export for a worker."""
    if scope.account_id is None:
        raise ValidationFailed({"export": "Only a person can ask for an export."})
    filters = as_of_now(confined(filters, scope))
    export = AuditExport(id=uuid.uuid4(), tenant_id=scope.tenant_id,
                         requested_by_account_id=scope.account_id, filters=stored(filters),
                         format=check_format(fmt), status="queued", created_at=clock.now())
    uow.session.add(export)
    uow.record(EventType.AUDIT_EXPORT_REQUESTED, tenant_id=scope.tenant_id,
               actor_account_id=scope.account_id, subject=f"audit_export:{export.id}",
               payload={"export_id": str(export.id), "format": fmt,
                        **filters_payload(filters)})
    return export


def stored(filters: Filters) -> dict[str, Any]:
    return {**filters.describe(), "types": list(filters.types)}


def from_stored(data: dict[str, Any]) -> Filters:
    def moment(name: str) -> datetime | None:
        value = data.get(name)
        return datetime.fromisoformat(value) if value else None

    practice = data.get("practice")
    return Filters(tenant_id=uuid.UUID(practice) if practice else None,
                   types=tuple(data.get("types") or ()), actor=data.get("actor"),
                   network=data.get("ip"), since=moment("since"), until=moment("until"),
                   outcome=data.get("outcome"), since_day=data.get("from"),
                   until_day=data.get("to"))


def file_key(export: AuditExport) -> str:
    return f"audit-exports/{export.id}.{export.format}"


@handler(name="write_audit_export", queue="exports", events={EventType.AUDIT_EXPORT_REQUESTED},
         retry=EXPORT_RETRY)
def write_audit_export(ctx: HandlerContext) -> None:
    """Write a requested export to the file store, audit it and tell the requester. A retry
    (the worker died half-way) writes the whole file again under the same key."""
    session, services = ctx.uow.session, ctx.services
    export = session.get(AuditExport, uuid.UUID(ctx.event.payload["export_id"]))
    if export is None or export.status == "done":
        return
    filters = from_stored(export.filters)
    key = file_key(export)
    with services.files.writer(key) as out:
        written = write(session, filters, export.format, out)
    export.status, export.rows, export.sha256 = "done", written.rows, written.sha256
    export.file_key, export.finished_at = key, clock.now()
    scope = Scope(export.requested_by_account_id, export.tenant_id)
    record_exported(ctx.uow, scope, filters, export.format, written.rows, "worker",
                    export_id=str(export.id), sha256=written.sha256)
    notify(ctx.uow, services.notifications, account_id=export.requested_by_account_id,
           tenant_id=export.tenant_id, kind=EXPORT_READY,
           title=f"Your audit export is ready ({written.rows:,} entries)",
           body="The download link works for you alone, for 24 hours.",
           link=download_path(services.settings.secret_key, export, clock.now()),
           source_event_id=ctx.event.id)


# -- signed download links -------------------------------------------------------------------

def _signature(secret: str, export_id: uuid.UUID, account_id: uuid.UUID, expires: int) -> str:
    message = f"audit-export|{export_id}|{account_id}|{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def download_path(secret: str, export: AuditExport, now: datetime) -> str:
    expires = int((now + LINK_LIFETIME).timestamp())
    signature = _signature(secret, export.id, export.requested_by_account_id, expires)
    return f"/audit/exports/{export.id}/download?expires={expires}&signature={signature}"


def open_download(uow: UnitOfWork, secret: str, export_id: uuid.UUID,
                  account_id: uuid.UUID, expires: str, signature: str) -> AuditExport:
    """The export behind a link, for the one person it was made for, while it is valid;
    otherwise NotFound (a link says nothing about exports that are not yours)."""
    try:
        expiry = int(expires)
    except ValueError:
        raise NotFound("This download link is not valid.") from None
    expected = _signature(secret, export_id, account_id, expiry)
    if not hmac.compare_digest(expected, signature) or expiry < clock.now().timestamp():
        raise NotFound("This download link is not valid or has expired; ask for the export "
                       "again.")
    export = uow.session.get(AuditExport, export_id)
    if export is None or export.status != "done" or export.file_key is None:
        raise NotFound("This export is not ready.")
    uow.record(EventType.AUDIT_EXPORT_DOWNLOADED, tenant_id=export.tenant_id,
               actor_account_id=account_id, subject=f"audit_export:{export.id}",
               payload={"export_id": str(export.id), "rows": export.rows})
    return export
