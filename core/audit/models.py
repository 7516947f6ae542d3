"""Audit entries: who did what, from where, to what, and when; chained, append-only.

On PostgreSQL `audit_entries` is partitioned by month of `created_at` (migration 0008): its
primary key there is (id, created_at), and monthly partitions are created ahead by a scheduled
job. SQLite keeps one plain table. Both refuse UPDATE and DELETE by triggers (see the migration).
"""

from __future__ import annotations

import ipaddress
import sqlite3
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects.postgresql import INET
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, JSONType, new_id
from core.scoping import TenantOwned

BIGINT_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
HASH = sa.LargeBinary(32)


class IPAddress(sa.TypeDecorator[str]):
    """inet on PostgreSQL (network filters use its index), text on SQLite."""

    impl = sa.String(45)
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(INET())
        return dialect.type_descriptor(sa.String(45))

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> str | None:
        return None if value is None else str(value)


class AuditEntry(TenantOwned, Base):
    __tablename__ = "audit_entries"

    id: Mapped[int] = mapped_column(BIGINT_ID, primary_key=True, autoincrement=True)
    # -- chained: covered by `hash` -------------------------------------------------------
    chain_id: Mapped[uuid.UUID]
    seq: Mapped[int] = mapped_column(sa.BigInteger)
    prev_hash: Mapped[bytes] = mapped_column(HASH)
    hash: Mapped[bytes] = mapped_column(HASH)
    # The event (or direct security entry) it came from.
    event_id: Mapped[uuid.UUID]
    type: Mapped[str] = mapped_column(sa.String(64))
    outcome: Mapped[str] = mapped_column(sa.String(16))
    tenant_id: Mapped[uuid.UUID | None]
    request_id: Mapped[str | None] = mapped_column(sa.String(64))
    details: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    occurred_at: Mapped[datetime]
    # When it entered the log; never earlier than the entry before it in its chain.
    created_at: Mapped[datetime]
    personal_digest: Mapped[bytes] = mapped_column(HASH)
    # -- personal: committed to by `personal_digest` while `personal_salt` is kept -------
    actor_account_id: Mapped[uuid.UUID | None]
    subject: Mapped[str | None] = mapped_column(sa.String(120))
    ip: Mapped[str | None] = mapped_column(IPAddress())
    user_agent: Mapped[str | None] = mapped_column(sa.String(400))
    personal_salt: Mapped[bytes | None] = mapped_column(sa.LargeBinary(16))

    __table_args__ = (
        # The viewer pages by (created_at, id), newest first, under any one filter.
        sa.Index("ix_audit_entries_created", "created_at", "id"),
        sa.Index("ix_audit_entries_tenant_created", "tenant_id", "created_at", "id"),
        sa.Index("ix_audit_entries_type_created", "type", "created_at", "id"),
        sa.Index("ix_audit_entries_actor_created", "actor_account_id", "created_at", "id"),
        sa.Index("ix_audit_entries_outcome_created", "outcome", "created_at", "id"),
        sa.Index("ix_audit_entries_subject_created", "subject", "created_at"),
        sa.Index("ix_audit_entries_ip", "ip"),
        # Verification and the sink walk each chain in order.
        sa.Index("ix_audit_entries_chain_seq", "chain_id", "seq"),
    )


AUDIT_ENTRIES: sa.Table = AuditEntry.__table__  # type: ignore[assignment]


class AuditChain(Base):
    """The head of each chain: the writer extends it under this row's lock."""

    __tablename__ = "audit_chains"

    chain_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(sa.BigInteger)
    head_hash: Mapped[bytes] = mapped_column(HASH)
    last_created_at: Mapped[datetime]


class AuditCheckpoint(Base):
    """Chain heads at a moment, signed (HMAC-SHA256) and sent to the sink: what the log held
    then, so that losing its tail shows. `kind` "retention" anchors chains whose oldest
    entries were archived and dropped. Append-only, like the entries."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(BIGINT_ID, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    created_at: Mapped[datetime]
    # {chain id: [seq, hash hex]}, only the chains that moved since the checkpoint before.
    heads: Mapped[dict[str, Any]]
    key_id: Mapped[str] = mapped_column(sa.String(16))
    signature: Mapped[str] = mapped_column(sa.String(64))


class AuditVerification(Base):
    """One run of the verifier: what it checked and what it found."""

    __tablename__ = "audit_verifications"

    id: Mapped[int] = mapped_column(BIGINT_ID, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID | None]
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime]
    ok: Mapped[bool]
    chains: Mapped[int]
    entries: Mapped[int]
    problems: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)


class AuditSinkCursor(Base):
    """How far each chain (and, under `sink.CHECKPOINTS`, the checkpoints) has reached the
    external sink."""

    __tablename__ = "audit_sink_cursors"

    chain_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    position: Mapped[int] = mapped_column(sa.BigInteger)
    delivered_at: Mapped[datetime]


class AuditExport(TenantOwned, Base):
    """An export too large to stream from the page, written by a worker to the file store.
    `tenant_id` is the practice it is confined to (None: an admin's, across practices)."""

    __tablename__ = "audit_exports"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    tenant_id: Mapped[uuid.UUID | None]
    requested_by_account_id: Mapped[uuid.UUID]
    filters: Mapped[dict[str, Any]]
    format: Mapped[str] = mapped_column(sa.String(8))
    status: Mapped[str] = mapped_column(sa.String(12))  # queued | done
    rows: Mapped[int | None]
    file_key: Mapped[str | None] = mapped_column(sa.String(300))
    sha256: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class AuditArchive(Base):
    """A month of entries exported to the file store before its partition may be dropped."""

    __tablename__ = "audit_archives"

    month: Mapped[str] = mapped_column(sa.String(7), primary_key=True)  # "2026-11"
    file_key: Mapped[str] = mapped_column(sa.String(300))
    rows: Mapped[int] = mapped_column(sa.BigInteger)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    exported_at: Mapped[datetime]
    dropped_at: Mapped[datetime | None]


class AuditRetentionPermit(Base):
    """SQLite only: the one way past its DELETE trigger. The retention routine inserts a permit,
    deletes the entries recorded before it and removes the permit, in one transaction."""

    __tablename__ = "audit_retention_permits"

    id: Mapped[int] = mapped_column(BIGINT_ID, primary_key=True, autoincrement=True)
    before: Mapped[datetime]


def _ip_in_network(ip: str | None, network: str | None) -> int | None:
    if ip is None or network is None:
        return None
    try:
        return int(ipaddress.ip_address(ip) in ipaddress.ip_network(network, strict=False))
    except ValueError:
        return 0


@event.listens_for(sa.engine.Engine, "connect")
def _sqlite_network_function(dbapi_connection: Any, _record: Any) -> None:
    """SQLite has no inet: network filters call this instead of PostgreSQL's <<=."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.create_function("ip_in_network", 2, _ip_in_network,
                                         deterministic=True)
