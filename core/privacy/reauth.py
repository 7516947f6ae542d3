"""Re-authentication before a person's data leaves or goes: the one place that decides.

The current password always; and, for a person with a second factor, one proven in the last ten
minutes (core.identity.stepup: `StepUpRequired` sends them to the step-up page and back).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.errors import NotFound, ValidationFailed
from core.identity.models import Identity
from core.identity.passwords import verify_password
from core.identity.sessions import SessionView
from core.identity.stepup import require_fresh_second_factor


def confirm_identity(session: Session, view: SessionView, *, password: str) -> Identity:
    """The session's identity, once the person proved again that they are it; StepUpRequired
    or ValidationFailed (on the `password` field) otherwise."""
    identity = session.get(Identity, view.identity_uuid)
    if identity is None:
        raise NotFound("No such identity.")
    require_fresh_second_factor(session, view)
    if not verify_password(identity.password_hash, password or ""):
        raise ValidationFailed({"password": "That is not your current password."})
    return identity
