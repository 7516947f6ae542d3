"""Re-authentication before a person's data leaves or goes: the one place that decides.

Today: the current password. The second factor (MFA step-up, #15) joins here: a caller passes
what the form collected, and this function is the only one that judges it.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.errors import NotFound, ValidationFailed
from core.identity.models import Identity
from core.identity.passwords import verify_password


def confirm_identity(session: Session, identity_id: object, *, password: str) -> Identity:
    """The identity, once the person proved again that they are it; ValidationFailed (on the
    `password` field) otherwise."""
    identity = session.get(Identity, identity_id)
    if identity is None:
        raise NotFound("No such identity.")
    if not verify_password(identity.password_hash, password or ""):
        raise ValidationFailed({"password": "That is not your current password."})
    return identity
