"""Pseudonymising a person's audit entries: the one change the append-only log accepts.

The actor becomes the erasure's stable pseudonym, the subject `pseudonym:<it>`, the IP keeps its
network (/24, IPv6 /48) and loses its host, the user agent and the personal metadata keys go,
and so does the salt of the entry's personal digest. None of it is chained (core/audit/chain.py),
so every chain still verifies. PostgreSQL does it in `audit_pseudonymise` (SECURITY DEFINER, the
only path its trigger lets through); SQLite in Python under a permit its trigger looks for.
"""

from __future__ import annotations

import ipaddress
import json
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from core.audit.chain import PERSONAL_KEYS
from core.audit.models import AUDIT_ENTRIES
from core.privacy.models import AuditPseudonymisePermit
from core.privacy.registry import Person

_E = AUDIT_ENTRIES.c


def truncated_ip(ip: str | None) -> str | None:
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)


def pseudonymise(session: Session, person: Person, pseudonym: uuid.UUID) -> int:
    """Pseudonymise every entry by or about `person`; returns how many changed."""
    if session.get_bind().dialect.name == "postgresql":
        statement = sa.text(
            "SELECT audit_pseudonymise(:accounts, :subjects, :pseudonym, :addresses)").bindparams(
            sa.bindparam("accounts", list(person.account_ids),
                         type_=postgresql.ARRAY(sa.Uuid())),
            sa.bindparam("subjects", list(person.subjects),
                         type_=postgresql.ARRAY(sa.String())),
            sa.bindparam("pseudonym", pseudonym, type_=sa.Uuid()),
            sa.bindparam("addresses", list(person.addresses),
                         type_=postgresql.ARRAY(sa.String())))
        return int(session.execute(statement).scalar_one())
    return _pseudonymise_sqlite(session, person, pseudonym)


def _names_them(metadata: dict[str, Any] | None, person: Person) -> bool:
    """Whether the entry's personal metadata (someone else's export filter …) names them."""
    personal = json.dumps({k: v for k, v in (metadata or {}).items() if k in PERSONAL_KEYS},
                          ensure_ascii=False)
    return any(address in personal for address in person.addresses)


def _pseudonymise_sqlite(session: Session, person: Person, pseudonym: uuid.UUID) -> int:
    accounts, subjects = set(person.account_ids), set(person.subjects)
    rows = [row for row in session.execute(
        sa.select(_E.id, _E.actor_account_id, _E.subject, _E.ip, _E.user_agent, _E.metadata)
        .where(sa.or_(_E.actor_account_id.in_(accounts), _E.subject.in_(subjects),
                      *(sa.cast(_E.metadata, sa.Text).contains(a) for a in person.addresses))))
        if row.actor_account_id in accounts or row.subject in subjects
        or _names_them(row.metadata, person)]
    permit = AuditPseudonymisePermit()
    session.add(permit)
    session.flush()
    for row in rows:
        values: dict[str, Any] = {
            "personal_salt": None,
            "metadata": {k: v for k, v in (row.metadata or {}).items()
                         if k not in PERSONAL_KEYS}}
        if row.actor_account_id in accounts:
            values["actor_account_id"] = pseudonym
        if row.subject in subjects:
            values["subject"] = f"pseudonym:{pseudonym}"
        if row.actor_account_id is None or row.actor_account_id in accounts:
            values["ip"], values["user_agent"] = truncated_ip(row.ip), None
        session.execute(sa.update(AUDIT_ENTRIES).where(_E.id == row.id).values(**values))
    session.delete(permit)
    session.flush()
    return len(rows)
