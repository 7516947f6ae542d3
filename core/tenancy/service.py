"""Practices: creation with a unique slug, lookup, activation."""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core import clock
from core.events.types import EventType
from core.tenancy.models import Tenant, TenantStatus
from core.text import clean_name
from core.uow import UnitOfWork

MAX_NAME = 120
RESERVED_SLUGS = frozenset({"admin", "api", "static", "join", "login", "signup", "new"})


def slugify(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:48].strip("-")
    return slug or "practice"


def _unique_slug(session: Session, name: str) -> str:
    base = slugify(name)
    if base in RESERVED_SLUGS:
        base = f"{base}-practice"
    taken = set(session.execute(
        sa.select(Tenant.slug).where(sa.or_(Tenant.slug == base, Tenant.slug.like(f"{base}-%")))
    ).scalars())
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def create_tenant(uow: UnitOfWork, name: str) -> Tenant:
    name = clean_name(name, "practice_name", "the practice's name", max_length=MAX_NAME)
    tenant = Tenant(id=uuid.uuid4(), slug=_unique_slug(uow.session, name), name=name,
                    status=TenantStatus.PROVISIONING, plan="standard", settings={},
                    created_at=clock.now())
    uow.session.add(tenant)
    # Written now: rows that belong to it follow in the same flush, and without a relationship
    # between the models SQLAlchemy would not know to insert the practice first.
    uow.session.flush()
    uow.record(EventType.TENANT_CREATED, tenant_id=tenant.id, subject=f"tenant:{tenant.id}",
               payload={"slug": tenant.slug})
    return tenant


_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def by_slug(session: Session, slug: str) -> Tenant | None:
    if not slug or len(slug) > 60 or not _SLUG.fullmatch(slug):
        return None
    return session.execute(sa.select(Tenant).where(Tenant.slug == slug)).scalar_one_or_none()


def all_tenants(session: Session) -> Sequence[Tenant]:
    return session.execute(sa.select(Tenant).order_by(Tenant.created_at.desc())).scalars().all()
