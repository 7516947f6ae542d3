"""Finding identities and their role accounts: by e-mail, and by (identity, role) only."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core.identity.models import Account, Identity, Role
from core.scoping import crossing_tenants


def identity_by_email(session: Session, email: str) -> Identity | None:
    return session.execute(sa.select(Identity).where(Identity.email == email)).scalar_one_or_none()


def account_for(session: Session, identity_id: uuid.UUID, role: Role | str) -> Account | None:
    """The one way to find an account: by (identity, role)."""
    with crossing_tenants(session):
        return session.execute(
            sa.select(Account).where(Account.identity_id == identity_id, Account.role == role)
        ).scalar_one_or_none()


def accounts_of(session: Session, identity_id: uuid.UUID) -> Sequence[Account]:
    """Every account of one identity, across tenants (a deliberate cross-tenant read)."""
    with crossing_tenants(session):
        return session.execute(
            sa.select(Account).where(Account.identity_id == identity_id)
            .order_by(Account.created_at)
        ).scalars().all()


def landing_account(session: Session, identity: Identity) -> Account | None:
    """Where a login lands: the role used last, else the first account."""
    accounts = accounts_of(session, identity.id)
    for account in accounts:
        if account.id == identity.last_account_id:
            return account
    return accounts[0] if accounts else None
