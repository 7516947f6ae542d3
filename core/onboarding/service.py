"""Onboarding progress: drafts, moves through the state machine, completion, reopening."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core import clock
from core.errors import Conflict, NotFound, ValidationFailed
from core.events.types import EventType
from core.onboarding import schemas
from core.onboarding.models import OnboardingProgress
from core.onboarding.stages import Stage, allowed, flow, is_forward, onboards, required_before
from core.uow import UnitOfWork


class VersionConflict(Conflict):
    """Someone saved in between (another tab, another device); nothing was overwritten."""

    def __init__(self, progress: OnboardingProgress) -> None:
        super().__init__("These answers were changed somewhere else since this page loaded.")
        self.progress = progress

    def details(self) -> dict[str, Any]:
        return {"current": snapshot(self.progress)}


class MoveNotAllowed(ValidationFailed):
    """A move the state machine does not allow (skipping ahead, a stage not in the flow)."""

    def __init__(self, message: str) -> None:
        super().__init__({"stage": message})
        self.message = message

    def __str__(self) -> str:
        return self.message


class StageIncomplete(ValidationFailed):
    """A stage's data is not complete and valid yet; `stage` is where to fix it."""

    def __init__(self, stage: Stage, errors: dict[str, str]) -> None:
        super().__init__(errors)
        self.stage = stage

    def details(self) -> dict[str, Any]:
        return {"fields": self.errors, "stage": self.stage.slug}


def begin(uow: UnitOfWork, *, account_id: uuid.UUID, role: str,
          tenant_id: uuid.UUID | None,
          known: Mapping[Stage, Mapping[str, Any]] | None = None) -> OnboardingProgress | None:
    """Called when an account is created; admins do not onboard. `known`: answers the person
    gave already (at sign-up), filled in so they are not asked twice."""
    if not onboards(role):
        return None
    now = clock.now()
    stages = flow(role)
    data = {stage.value: schemas.clean_draft(stage, values)
            for stage, values in (known or {}).items() if stage in stages}
    progress = OnboardingProgress(id=uuid.uuid4(), account_id=account_id, tenant_id=tenant_id,
                                  role=role, stage=Stage.STARTED, data=data, version=1,
                                  started_at=now, updated_at=now, reminders_sent=0)
    uow.session.add(progress)
    uow.record(EventType.ONBOARDING_STARTED, tenant_id=tenant_id, actor_account_id=account_id,
               subject=f"account:{account_id}", payload={"role": role})
    return progress


def of_account(session: Session, account_id: uuid.UUID, *,
               for_update: bool = False) -> OnboardingProgress | None:
    query = sa.select(OnboardingProgress).where(OnboardingProgress.account_id == account_id)
    if for_update:
        query = query.with_for_update()
    return session.execute(query).scalar_one_or_none()


def snapshot(progress: OnboardingProgress) -> dict[str, Any]:
    """What the API returns: {"stage", "data", "version", "completed"}."""
    return {"stage": progress.stage, "data": progress.data, "version": progress.version,
            "completed": progress.completed_at is not None}


def _locked(uow: UnitOfWork, account_id: uuid.UUID, version: int | None) -> OnboardingProgress:
    progress = of_account(uow.session, account_id, for_update=True)
    if progress is None:
        raise NotFound("There is no onboarding for this account.")
    if version is not None and version != progress.version:
        raise VersionConflict(progress)
    return progress


def _merged(progress: OnboardingProgress, stage: Stage, values: Mapping[str, Any]) -> None:
    data = dict(progress.data or {})
    data[stage.value] = {**data.get(stage.value, {}), **values}
    progress.data = data  # a new dict, so the JSON column is seen as changed


def _touch(progress: OnboardingProgress) -> None:
    progress.version += 1
    progress.updated_at = clock.now()


def save_draft(uow: UnitOfWork, account_id: uuid.UUID, stage: Stage,
               values: Mapping[str, Any], version: int | None) -> OnboardingProgress:
    """Keep what was typed (auto-save). The current stage may hold an unfinished draft; a stage
    already passed (every stage, once onboarding is complete) must stay valid, or a completed
    set-up would silently reopen later. Never for a stage not reached yet."""
    progress = _locked(uow, account_id, version)
    stages = flow(progress.role)
    if stage not in stages or stage not in schemas.FIELDS:
        raise MoveNotAllowed("That stage is not part of your onboarding.")
    position, reached = stages.index(stage), stages.index(Stage(progress.stage))
    if position > reached:
        raise MoveNotAllowed("Finish the earlier steps first.")
    _merged(progress, stage, schemas.clean_draft(stage, values))
    if position < reached or progress.completed_at is not None:
        _clean, errors = schemas.validate(stage, stage_data(progress, stage))
        if errors:
            raise StageIncomplete(stage, errors)
    _touch(progress)
    return progress


class AnswersInvalid(ValidationFailed):
    """Answers changed after the fact (the settings page) that are not all valid."""


def update_answers(uow: UnitOfWork, account_id: uuid.UUID, stage: Stage,
                   values: Mapping[str, Any]) -> OnboardingProgress:
    """Replace a stage's answers outside the wizard: complete and valid, or nothing changes."""
    progress = _locked(uow, account_id, None)
    merged = {**stage_data(progress, stage), **schemas.clean_draft(stage, values)}
    clean, errors = schemas.validate(stage, merged)
    if errors:
        raise AnswersInvalid(errors)
    _merged(progress, stage, clean)
    _touch(progress)
    return progress


def stage_data(progress: OnboardingProgress, stage: Stage) -> dict[str, Any]:
    return dict((progress.data or {}).get(stage.value, {}))


def move(uow: UnitOfWork, account_id: uuid.UUID, target: Stage, *,
         values: Mapping[str, Any] | None = None, version: int | None = None,
         ip: str | None = None) -> OnboardingProgress:
    """Go to `target`: one stage forward once the data so far is valid, or back to edit."""
    progress = _locked(uow, account_id, version)
    current = Stage(progress.stage)
    if values is not None and current in schemas.FIELDS:
        _merged(progress, current, schemas.clean_draft(current, values))
    if not allowed(progress.role, current, target):
        raise MoveNotAllowed("Finish the earlier steps first." if target != current else
                             "You are already there.")
    if is_forward(progress.role, current, target):
        _require_valid(progress, target)
        _record_stage_done(uow, progress, current, ip)
    progress.stage = target
    if target == Stage.COMPLETED:
        progress.completed_at = clock.now()
        uow.record(EventType.ONBOARDING_COMPLETED, tenant_id=progress.tenant_id,
                   actor_account_id=progress.account_id,
                   subject=f"account:{progress.account_id}", payload={"role": progress.role})
    _touch(progress)
    return progress


def _require_valid(progress: OnboardingProgress, target: Stage) -> None:
    for stage in required_before(progress.role, target):
        _clean, errors = schemas.validate(stage, stage_data(progress, stage))
        if errors:
            raise StageIncomplete(stage, errors)


def _record_stage_done(uow: UnitOfWork, progress: OnboardingProgress, stage: Stage,
                       ip: str | None) -> None:
    if stage == Stage.TERMS:
        progress.terms_version = schemas.TERMS_VERSION
        progress.terms_accepted_at = clock.now()
        progress.terms_ip = ip
    uow.record(EventType.ONBOARDING_STAGE_COMPLETED, tenant_id=progress.tenant_id,
               actor_account_id=progress.account_id, subject=f"account:{progress.account_id}",
               payload={"stage": stage.value, "role": progress.role,
                        **({"terms_version": schemas.TERMS_VERSION}
                           if stage == Stage.TERMS else {})})


def outdated_stage(progress: OnboardingProgress) -> Stage | None:
    """For a completed account: the first stage that needs it again (new terms, new rules)."""
    for stage in flow(progress.role):
        if stage == Stage.TERMS and progress.terms_version != schemas.TERMS_VERSION:
            return stage
        if stage in schemas.FIELDS and not schemas.is_valid(stage, stage_data(progress, stage)):
            return stage
    return None


def reopen_if_outdated(uow: UnitOfWork, progress: OnboardingProgress) -> Stage | None:
    if progress.completed_at is None:
        return None
    stage = outdated_stage(progress)
    if stage is None:
        return None
    progress.stage = stage
    progress.completed_at = None
    _touch(progress)
    uow.record(EventType.ONBOARDING_REOPENED, tenant_id=progress.tenant_id,
               actor_account_id=progress.account_id, subject=f"account:{progress.account_id}",
               payload={"stage": stage.value,
                        "reason": "terms" if stage == Stage.TERMS else "required_field"})
    return stage
