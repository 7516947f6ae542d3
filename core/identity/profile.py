"""A person's profile as the settings page shows it: the name the practice sees, and what
they answered about themselves in set-up (full name, phone, time zone, language)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from core.errors import ValidationFailed
from core.events.types import EventType
from core.identity import sessions
from core.identity.models import Account
from core.onboarding import service as onboarding
from core.onboarding.stages import Stage
from core.tenancy.guard import owned
from core.text import clean_name
from core.uow import UnitOfWork

ANSWERED = ("full_name", "phone", "time_zone", "preferred_language")


@dataclass(frozen=True)
class Profile:
    display_name: str
    answers: dict[str, Any]
    # Admins do not set up, so they have no answers to change.
    has_answers: bool


def profile_of(session: Session, view: sessions.SessionView) -> Profile:
    account = owned(session, Account, view.account_uuid)
    progress = onboarding.of_account(session, account.id)
    answers = onboarding.stage_data(progress, Stage.PERSONAL_INFO) if progress else {}
    return Profile(account.display_name, answers, progress is not None)


def update_profile(uow: UnitOfWork, view: sessions.SessionView, *,
                   display_name: str, answers: dict[str, Any]) -> Profile:
    """Every field must be valid (the same rules as in set-up); times then show in the new
    time zone on the very next page."""
    session = uow.session
    account = owned(session, Account, view.account_uuid)
    errors: dict[str, str] = {}
    try:
        name = clean_name(display_name, "display_name", "your name")
    except ValidationFailed as refused:  # reported together with the answers' errors
        errors.update(refused.errors)
        name = account.display_name
    progress = onboarding.of_account(session, account.id)
    if progress is not None:
        try:
            onboarding.update_answers(uow, account.id, Stage.PERSONAL_INFO,
                                      {k: answers.get(k, "") for k in ANSWERED})
        except onboarding.AnswersInvalid as invalid:
            errors.update(invalid.errors)
    if errors:
        raise onboarding.AnswersInvalid(errors)
    account.display_name = name
    uow.record(EventType.PROFILE_UPDATED, tenant_id=account.tenant_id,
               actor_account_id=account.id, subject=f"identity:{view.identity_id}",
               payload={"fields": ["display_name", *(ANSWERED if progress else ())]})
    return profile_of(session, view)
