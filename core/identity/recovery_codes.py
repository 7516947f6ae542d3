"""Recovery codes: ten single-use codes that stand in for a lost second factor.

Shown once (when the first factor is confirmed, and whenever they are made again); only their
SHA-256 digests are stored: each is ten random characters from a 31-letter alphabet (~50 bits),
so a fast digest is enough and a lookup by digest is exact. Guessing is bounded by the log-in
lockout (core.identity.mfa).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core import clock
from core.errors import Conflict
from core.identity import sessions
from core.identity.mfa_policy import has_second_factor
from core.identity.models import RecoveryCode
from core.uow import UnitOfWork

COUNT = 10
LENGTH = 10
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read aloud, typed


def _normalise(code: str) -> str:
    return re.sub(r"[\s-]", "", (code or "").lower())


def _digest(code: str) -> str:
    return hashlib.sha256(_normalise(code).encode()).hexdigest()


def _new_code() -> str:
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(LENGTH))
    return f"{raw[:5]}-{raw[5:]}"


def left(session: Session, identity_id: uuid.UUID) -> int:
    return session.execute(
        sa.select(sa.func.count()).select_from(RecoveryCode)
        .where(RecoveryCode.identity_id == identity_id, RecoveryCode.used_at.is_(None))
    ).scalar_one()


def issue(uow: UnitOfWork, view: sessions.SessionView) -> list[str]:
    """Ten new codes; the old ones stop working. The codes exist only in the answer."""
    session = uow.session
    if not has_second_factor(session, view.identity_uuid):
        raise Conflict("Set up a second factor first: recovery codes stand in for it.")
    session.execute(sa.delete(RecoveryCode).where(RecoveryCode.identity_id == view.identity_uuid))
    codes = [_new_code() for _ in range(COUNT)]
    now = clock.now()
    session.add_all(RecoveryCode(id=uuid.uuid4(), identity_id=view.identity_uuid,
                                 code_hash=_digest(code), created_at=now) for code in codes)
    return codes


def use(session: Session, identity_id: uuid.UUID, code: str) -> int | None:
    """Use up `code` if it is one of the person's unused codes: how many are left then, or None.
    One UPDATE: two requests with one code cannot both use it."""
    if len(_normalise(code)) != LENGTH:
        return None
    used = session.execute(
        sa.update(RecoveryCode)
        .where(RecoveryCode.identity_id == identity_id, RecoveryCode.code_hash == _digest(code),
               RecoveryCode.used_at.is_(None))
        .values(used_at=clock.now())
    )
    if used.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return left(session, identity_id)
