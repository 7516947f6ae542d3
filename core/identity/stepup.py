"""Step-up: a sensitive action needs a second factor proven in the last ten minutes.

Changing the e-mail address or the password, exporting data and admin actions call
`require_fresh_second_factor` (the web tier's `fresh_second_factor_required` decorator wraps
it). A person without a second factor is not asked for one; a person with one, whose session
proved it longer ago (or never: a session made before they enrolled), gets `StepUpRequired`,
which the web tier turns into the step-up page and back.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from core import clock
from core.errors import DomainError
from core.identity.mfa_policy import has_second_factor
from core.identity.sessions import SessionView

STEP_UP_WINDOW = timedelta(minutes=10)


class StepUpRequired(DomainError):
    """Prove your second factor again first (web.errors: a redirect to the step-up page)."""

    def __init__(self) -> None:
        super().__init__("For this, confirm it is you with your second factor.")


def second_factor_is_fresh(view: SessionView) -> bool:
    if not view.second_factor_at:
        return False
    proven = datetime.fromisoformat(view.second_factor_at)
    return clock.now() - proven <= STEP_UP_WINDOW


def require_fresh_second_factor(session: Session, view: SessionView) -> None:
    """Raise StepUpRequired unless the person has no second factor or proved it lately."""
    if second_factor_is_fresh(view):
        return
    if has_second_factor(session, view.identity_uuid):
        raise StepUpRequired()
