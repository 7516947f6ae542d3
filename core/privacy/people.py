"""Finding a person (every account, every practice) and writing their rows as plain JSON."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core.errors import NotFound
from core.events.models import Event
from core.events.types import EventType
from core.identity.mails import personal_value
from core.identity.models import Account, Identity, Token
from core.privacy.registry import REGISTRY, Person, PersonalTable
from core.scoping import crossing_tenants

# Secrets are never exported, not even to their owner: they would only help whoever steals the
# file (hashes of passwords, link tokens and recovery codes, authenticator-app secrets, the
# audit digests' salts).
SECRETS = frozenset({"password_hash", "token_hash", "personal_salt", "secret_encrypted",
                     "code_hash"})


def person_of(session: Session, identity_id: uuid.UUID) -> Person:
    with crossing_tenants(session):
        identity = session.get(Identity, identity_id)
        if identity is None:
            raise NotFound("No such person.")
        accounts = session.execute(
            sa.select(Account).where(Account.identity_id == identity_id)
            .order_by(Account.created_at)).scalars().all()
        former = former_addresses(session, identity)
    return Person(identity.id, identity.email, tuple(a.id for a in accounts),
                  tuple(dict.fromkeys(a.tenant_id for a in accounts if a.tenant_id)),
                  tuple(sorted(former)))


def former_addresses(session: Session, identity: Identity) -> set[str]:
    """Addresses the login had, or was being moved to (an e-mail change's events and links)."""
    found: set[str] = set()
    for payload in session.execute(sa.select(Event.payload).where(
            Event.type.in_([EventType.EMAIL_CHANGE_REQUESTED, EventType.EMAIL_CHANGED]),
            Event.subject == f"identity:{identity.id}")).scalars():
        for key in ("old_email", "new_email"):
            value = personal_value(payload or {}, key)
            if isinstance(value, str) and value:
                found.add(value)
    found.update(address for address in session.execute(sa.select(Token.new_email).where(
        Token.identity_id == identity.id, Token.new_email.is_not(None))).scalars() if address)
    return found - {identity.email}


def plain(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def as_record(row: Any) -> dict[str, Any]:
    mapper = sa.inspect(row).mapper
    return {attr.columns[0].name: plain(getattr(row, attr.key))
            for attr in mapper.column_attrs if attr.columns[0].name not in SECRETS}


def rows_of(session: Session, entry: PersonalTable, person: Person) -> list[Any]:
    with crossing_tenants(session):
        return list(session.execute(entry.rows(person)).scalars())


def everything(session: Session, person: Person) -> dict[str, list[dict[str, Any]]]:
    """Every registered table's rows of theirs, as records (table name → records)."""
    return {entry.table: [as_record(row) for row in rows_of(session, entry, person)]
            for entry in REGISTRY}
