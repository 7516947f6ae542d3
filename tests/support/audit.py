"""Audit log helpers: entries made through the real writer, and tampering as a superuser would."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from core.audit import writer
from core.audit.chain import chain_of
from core.audit.models import AuditEntry
from core.config import normalise_database_url
from core.db import Database
from core.events.types import EventType
from core.scoping import TenantContext, system_session
from core.uow import Origin, UnitOfWork
from tests.conftest import TEST_DATABASE_URL


def write_entries(db: Database, count: int, *, tenant_id: uuid.UUID | None = None,
                  event_type: EventType = EventType.TEST_EMAIL_REQUESTED,
                  origin: Origin | None = None, **fields: object) -> None:
    """`count` events of one practice (or the platform), audited by the batch writer."""
    with UnitOfWork(db, origin=origin or Origin(ip="198.51.100.7", user_agent="agent/1"),
                    tenant=TenantContext.system()) as uow:
        for n in range(count):
            uow.record(event_type, tenant_id=tenant_id, subject="mail:test",
                       payload={"n": n}, **fields)  # type: ignore[arg-type]
        uow.commit()
        while writer.write_pending(uow):
            pass


def chain_entries(db: Database, tenant_id: uuid.UUID | None) -> list[AuditEntry]:
    with system_session(db) as session:
        return list(session.execute(
            sa.select(AuditEntry).where(AuditEntry.chain_id == chain_of(tenant_id))
            .order_by(AuditEntry.seq)).scalars())


@contextmanager
def as_superuser(db: Database) -> Iterator[sa.Connection]:
    """A superuser's connection to the test database with triggers switched off for the
    session (`session_replication_role = replica`): what someone who owns the server can do."""
    url = sa.engine.make_url(normalise_database_url(TEST_DATABASE_URL or "")).set(
        database=db.engine.url.database)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("SET LOCAL session_replication_role = replica"))
            yield connection
    finally:
        engine.dispose()
