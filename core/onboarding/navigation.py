"""Where a person goes in the onboarding wizard: the one place its navigation rules live.

The pages and the JSON API both ask here: which stage a link may show (no skipping ahead),
what a submitted stage leads to (forward once valid, back to edit, save and leave for later),
and whether an account's dashboard must wait for its onboarding (the completion gate). The
answers are plain values (`ShowStage`, `GoTo`) the web tier turns into pages and redirects.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from core.caching import ONBOARDING, CachedRegions, CacheKey
from core.errors import Conflict, DomainError, NotFound, ValidationFailed
from core.onboarding import schemas, service
from core.onboarding.models import OnboardingProgress
from core.onboarding.stages import Stage, flow, next_stage
from core.scoping import crossing_tenants
from core.uow import UnitOfWork

FINISH_EARLIER_STEP = "Please finish this step first."
COMPLETE_EARLIER_STEP = "Please complete this step first."
NEEDS_UPDATE = "Something you agreed to or told us needs an update. Please check this step."
SAVED_FOR_LATER = "Your answers are saved. Pick up where you left off whenever you like."
ALL_SET = "You're all set. Welcome!"
CHANGED_ELSEWHERE = ("These answers were changed in another window or device since this page was "
                     "opened. Check them, then continue.")
NO_VERSION = ("This page was sent without the version of your answers it was based on. Check "
              "your answers below, then continue.")

ACTIONS = ("continue", "back", "later")


@dataclass(frozen=True)
class ShowStage:
    """Show this stage's page; `refusal` says why it is shown again (and so its status)."""

    progress: OnboardingProgress
    stage: Stage
    values: dict[str, Any] | None = None  # what was typed; None: what is stored
    errors: dict[str, str] = field(default_factory=dict)
    notice: str | None = None
    refusal: DomainError | None = None


@dataclass(frozen=True)
class GoTo:
    """Go to `stage` (None: the dashboard), telling the person `notice` if there is one."""

    stage: Stage | None
    notice: str | None = None
    level: str = "info"
    # Leaving for later: the dashboard shows a banner to resume instead of sending them back.
    deferred: bool = False
    completed: bool = False


class StaleForm(ValidationFailed):
    """A form sent without the version it was based on: it could overwrite another tab."""

    def __init__(self) -> None:
        super().__init__({"version": NO_VERSION})


# -- the completion gate -----------------------------------------------------------------------

def _status(session: Session, account_id: uuid.UUID) -> dict[str, Any] | None:
    """What the gate and the resume banner need: the stage, and whether the onboarding is
    complete under the current terms (None: this account does not onboard); and the time zone
    the person gave, in which every page shows them times. Read across
    tenants: a request prefetches it before its practice is set (core.identity.sessions), and
    the account id comes from its own session."""
    with crossing_tenants(session):
        progress = service.of_account(session, account_id)
    if progress is None:
        return None
    complete = progress.completed_at is not None and service.outdated_stage(progress) is None
    return {"stage": progress.stage, "complete": complete, "terms": schemas.TERMS_VERSION,
            "time_zone": schemas.answered_zone(progress.data)}


def status_entry(session: Session, account_id: uuid.UUID
                 ) -> tuple[CacheKey, Callable[[], dict[str, Any] | None]]:
    """The status's cache key and how to read it (for a request's prefetch)."""
    return ONBOARDING.key(account_id), lambda: _status(session, account_id)


def status(session: Session, regions: CachedRegions,
           account_id: uuid.UUID) -> dict[str, Any] | None:
    cached: dict[str, Any] | None = regions.get(*status_entry(session, account_id))
    if cached is not None and cached.get("terms") != schemas.TERMS_VERSION:
        return _status(session, account_id)  # stored under older terms (a deploy meanwhile)
    return cached


def detour(uow: UnitOfWork, regions: CachedRegions, account_id: uuid.UUID, *,
           deferred: bool) -> GoTo | None:
    """Where an account must go instead of its dashboard, or None. A completed onboarding that
    new terms or a new rule made outdated is reopened at the stage that needs it."""
    known = status(uow.session, regions, account_id)
    if known is None or known["complete"]:
        return None  # admins do not onboard
    progress = service.of_account(uow.session, account_id)
    if progress is None:
        return None
    if progress.completed_at is not None:
        reopened = service.reopen_if_outdated(uow, progress)
        if reopened is None:
            return None
        return GoTo(reopened, NEEDS_UPDATE, "warning")
    if deferred:
        return None  # "Save & Continue Later": the dashboard shows a banner to resume
    return GoTo(Stage(progress.stage))


def unfinished_stage(session: Session, regions: CachedRegions,
                     account_id: uuid.UUID) -> Stage | None:
    """For the resume banner: the stage an incomplete onboarding stopped at."""
    known = status(session, regions, account_id)
    if known is None or known["complete"] or known["stage"] == Stage.COMPLETED:
        return None
    return Stage(known["stage"])


# -- the wizard's pages ------------------------------------------------------------------------

def progress_of(session: Session, account_id: uuid.UUID) -> OnboardingProgress:
    progress = service.of_account(session, account_id)
    if progress is None:
        raise NotFound("This account has no onboarding.")
    return progress


def resume(session: Session, account_id: uuid.UUID) -> GoTo:
    progress = progress_of(session, account_id)
    if progress.completed_at is not None:
        return GoTo(None)
    return GoTo(Stage(progress.stage))


def open_stage(session: Session, account_id: uuid.UUID, slug: str) -> ShowStage | GoTo:
    """What a link to a stage shows: that stage, or where to go instead."""
    progress = progress_of(session, account_id)
    wanted = Stage.from_slug(slug)
    stages = flow(progress.role)
    if wanted is None or wanted not in stages or wanted == Stage.COMPLETED:
        return resume(session, account_id)
    if progress.completed_at is not None:
        return GoTo(None)
    current = Stage(progress.stage)
    if stages.index(wanted) > stages.index(current):
        return GoTo(current, FINISH_EARLIER_STEP)  # no skipping ahead
    return ShowStage(progress, wanted)


def submit_stage(uow: UnitOfWork, account_id: uuid.UUID, slug: str, *, action: str,
                 values: Mapping[str, Any], version: int | None,
                 ip: str | None) -> ShowStage | GoTo:
    """A stage's form was sent: save it and say where the person goes next."""
    progress = progress_of(uow.session, account_id)
    page = Stage.from_slug(slug)
    stages = flow(progress.role)
    if page is None or page not in stages:
        return resume(uow.session, account_id)
    if progress.completed_at is not None:
        return GoTo(None)
    current = Stage(progress.stage)
    if stages.index(page) > stages.index(current):
        return GoTo(current, FINISH_EARLIER_STEP)
    typed = dict(values)
    try:
        if version is None:
            raise StaleForm()
        return _apply(uow, progress, page, action, typed, version, ip)
    except Conflict as conflict:
        # Nothing is overwritten either way: show what they typed, with the newer version.
        newer = conflict.progress if isinstance(conflict, service.VersionConflict) else progress
        return ShowStage(newer, page, values=typed, notice=CHANGED_ELSEWHERE, refusal=conflict)
    except StaleForm as stale:
        return ShowStage(progress, page, values=typed, notice=NO_VERSION, refusal=stale)
    except service.StageIncomplete as incomplete:
        if incomplete.stage != page:
            return GoTo(incomplete.stage, COMPLETE_EARLIER_STEP, "warning")
        return ShowStage(progress_of(uow.session, account_id), page, values=typed,
                         errors=incomplete.errors, refusal=incomplete)
    except schemas.DraftRejected as rejected:
        return ShowStage(progress_of(uow.session, account_id), page, values=typed,
                         errors=rejected.errors, refusal=rejected)
    except service.MoveNotAllowed as refused:
        return GoTo(None if progress.completed_at else Stage(progress.stage), refused.message)


def _apply(uow: UnitOfWork, progress: OnboardingProgress, page: Stage, action: str,
           values: dict[str, Any], version: int, ip: str | None) -> GoTo:
    stages = flow(progress.role)
    has_fields = page in schemas.FIELDS
    current = Stage(progress.stage)
    if action == "later":
        if has_fields:
            service.save_draft(uow, progress.account_id, page, values, version)
        return GoTo(None, SAVED_FOR_LATER, "success", deferred=True)
    if action == "back":
        if has_fields:
            service.save_draft(uow, progress.account_id, page, values, version)
        previous = stages[max(stages.index(page) - 1, 0)]
        return _after(service.move(uow, progress.account_id, previous))
    if page != current:
        # An edit of a stage already passed: it must stay valid; then on towards where they were.
        service.save_draft(uow, progress.account_id, page, values, version)
        return GoTo(stages[stages.index(page) + 1])
    moved = service.move(uow, progress.account_id, next_stage(progress.role, page),
                         values=values if has_fields else None, version=version, ip=ip)
    return _after(moved)


def _after(progress: OnboardingProgress) -> GoTo:
    if progress.completed_at is not None:
        return GoTo(None, ALL_SET, "success", completed=True)
    return GoTo(Stage(progress.stage))


# -- the whole of it at once (the seed's POST /api/onboarding/complete) ------------------------

def finish(uow: UnitOfWork, account_id: uuid.UUID, answers: Mapping[str, Mapping[str, Any]], *,
           version: int, ip: str | None) -> OnboardingProgress:
    """Take every stage's answers (keyed by stage slug), then move forward stage by stage to
    the end, by the same rules as the pages: a stage left invalid stops it (StageIncomplete,
    with that stage's field errors); another device's save in between is a conflict."""
    progress = service.of_account(uow.session, account_id, for_update=True)
    if progress is None:
        raise NotFound("This account has no onboarding.")
    if progress.version != version:
        raise service.VersionConflict(progress)
    if progress.completed_at is not None:
        return progress
    stages = flow(progress.role)
    by_stage = _answers_by_stage(stages, answers)
    while progress.completed_at is None:
        current = Stage(progress.stage)
        progress = service.move(uow, account_id, next_stage(progress.role, current),
                                values=by_stage.get(current), version=progress.version, ip=ip)
    return progress


def _answers_by_stage(stages: tuple[Stage, ...],
                      answers: Mapping[str, Mapping[str, Any]]) -> dict[Stage, Mapping[str, Any]]:
    by_stage: dict[Stage, Mapping[str, Any]] = {}
    unknown: dict[str, str] = {}
    for slug, values in answers.items():
        stage = Stage.from_slug(slug)
        if stage is None or stage not in stages or stage not in schemas.FIELDS:
            unknown[slug] = "Not a stage of your onboarding."
        elif not isinstance(values, Mapping):
            unknown[slug] = "Expected an object of answers."
        else:
            by_stage[stage] = values
    if unknown:
        raise ValidationFailed(unknown)
    return by_stage
