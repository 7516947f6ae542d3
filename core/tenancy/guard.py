"""The tenant guard: an object of the caller's practice, or NotFound — never a hint that it
exists in another practice (the web tier audits such an attempt as ACCESS_DENIED)."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core.errors import NotFound
from core.scoping import crossing_tenants

M = TypeVar("M")


class OutsideTenant(NotFound):
    """The object exists, in another practice. Shown to the caller as a plain NotFound."""

    def __init__(self, subject: str) -> None:
        super().__init__("There is nothing at this address.")
        self.subject = subject


def owned(session: Session, model: type[M], object_id: uuid.UUID | str | int) -> M:
    found = session.get(model, object_id)
    if found is not None:
        return found
    table: Any = model.__table__  # type: ignore[attr-defined]
    key = table.primary_key.columns.values()[0]
    with crossing_tenants(session):
        exists = session.execute(sa.select(key).where(key == object_id)).first()
    if exists:
        raise OutsideTenant(f"{table.name}:{object_id}")
    raise NotFound("There is nothing at this address.")
