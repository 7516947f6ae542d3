"""The onboarding wizard: one page per stage, plain form posts that work without JavaScript,
and a small JSON API that the auto-save script uses on top."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_wtf.csrf import generate_csrf

from core.errors import NotFound
from core.identity.sessions import SessionView
from core.onboarding import schemas, service
from core.onboarding.models import OnboardingProgress
from core.onboarding.stages import Stage, flow, next_stage
from web.authn import current, login_required, role_required
from web.context import services, uow
from web.errors import error_response
from web.inputs import json_object

blueprint = Blueprint("onboarding", __name__)

DEFERRED = "onboarding_deferred"
CONFLICT_NOTICE = ("These answers were changed in another window or device since this page was "
                   "opened. Check them, then continue.")
STALE_FORM_NOTICE = ("This page was sent without the version of your answers it was based on. "
                     "Check your answers below, then continue.")
LABELS = {
    Stage.STARTED: "Welcome",
    Stage.PERSONAL_INFO: "About you",
    Stage.PROFESSIONAL_INFO: "Your practice",
    Stage.TERMS: "Terms",
    Stage.COMPLETED: "Done",
}


# -- the gate ----------------------------------------------------------------------------------

def _complete_key(account_id: str) -> str:
    # The terms version is part of the key: new terms make every cached "complete" stale.
    return f"onboarding-complete:{schemas.TERMS_VERSION}:{account_id}"


def _known_complete(view: SessionView) -> bool:
    """Read once per request: the gate and the resume banner both ask."""
    if "onboarding_complete" not in g:
        g.onboarding_complete = bool(services().cache.get(_complete_key(view.account_id)))
    return bool(g.onboarding_complete)


def gate(view: SessionView) -> Response | None:
    """Where an account whose onboarding is not complete must go instead of its dashboard."""
    cache = services().cache
    if view.role == "admin" or _known_complete(view):
        return None
    progress = service.of_account(uow().session, view.account_uuid)
    if progress is None:
        return None
    if progress.completed_at is not None:
        if service.reopen_if_outdated(uow(), progress) is None:
            cache.set(_complete_key(view.account_id), b"1", 3600)
            return None
        uow().commit()
        flash("Something you agreed to or told us needs an update. Please check this step.",
              "warning")
        return redirect(url_for("onboarding.stage", slug=Stage(progress.stage).slug))
    if session.get(DEFERRED):
        return None  # "Save & Continue Later": the dashboard shows a banner to resume
    return redirect(url_for("onboarding.stage", slug=Stage(progress.stage).slug))


def pending_stage(view: SessionView | None) -> Stage | None:
    """For the resume banner: the stage an incomplete onboarding stopped at."""
    if view is None or view.role == "admin" or _known_complete(view):
        return None
    progress = service.of_account(uow().session, view.account_uuid)
    if progress is None or progress.completed_at is not None:
        return None
    return Stage(progress.stage)


# -- pages -------------------------------------------------------------------------------------

def _me() -> SessionView:
    view = current()
    assert view is not None
    return view


def _progress() -> OnboardingProgress:
    progress = service.of_account(uow().session, _me().account_uuid)
    if progress is None:
        abort(404)
    return progress


def _page(progress: OnboardingProgress, stage: Stage, *, values: dict[str, Any] | None = None,
          errors: dict[str, str] | None = None, notice: str | None = None,
          status: int = 200) -> tuple[str, int]:
    stages = [s for s in flow(progress.role) if s != Stage.COMPLETED]
    return render_template(
        "onboarding/stage.html", progress=progress, stage=stage, stages=stages, labels=LABELS,
        current_index=stages.index(Stage(progress.stage)) if progress.stage in stages
        else len(stages),
        fields=schemas.FIELDS.get(stage, ()), values=values
        if values is not None else service.stage_data(progress, stage),
        errors=errors or {}, notice=notice, languages=schemas.LANGUAGES,
        specialties=schemas.SPECIALTIES, time_zones=schemas.time_zones(),
        terms_version=schemas.TERMS_VERSION,
    ), status


@blueprint.get("/onboarding")
@role_required("client", "therapist")
def resume() -> Response:
    progress = _progress()
    if progress.completed_at is not None:
        return redirect(url_for("dashboards.dashboard"))
    return redirect(url_for("onboarding.stage", slug=Stage(progress.stage).slug))


@blueprint.get("/onboarding/<slug>")
@role_required("client", "therapist")
def stage(slug: str) -> Any:
    progress = _progress()
    wanted = Stage.from_slug(slug)
    stages = flow(progress.role)
    if wanted is None or wanted not in stages or wanted == Stage.COMPLETED:
        return redirect(url_for("onboarding.resume"))
    if progress.completed_at is not None:
        return redirect(url_for("dashboards.dashboard"))
    if stages.index(wanted) > stages.index(Stage(progress.stage)):
        flash("Please finish this step first.", "info")  # no skipping ahead
        return redirect(url_for("onboarding.stage", slug=Stage(progress.stage).slug))
    return _page(progress, wanted)


def _submitted(stage_: Stage) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for spec in schemas.FIELDS.get(stage_, ()):
        if spec.kind == "list":
            values[spec.name] = request.form.getlist(spec.name)
        elif spec.kind == "bool":
            values[spec.name] = request.form.get(spec.name) in ("on", "true", "1", "yes")
        else:
            values[spec.name] = request.form.get(spec.name, "")
    return values


def _version() -> int | None:
    try:
        return int(request.form.get("version", ""))
    except ValueError:
        return None


@blueprint.post("/onboarding/<slug>")
@role_required("client", "therapist")
def submit(slug: str) -> Any:
    progress = _progress()
    page_stage = Stage.from_slug(slug)
    if page_stage is None or page_stage not in flow(progress.role):
        return redirect(url_for("onboarding.resume"))
    action = request.form.get("action", "continue")
    values = _submitted(page_stage)
    stages = flow(progress.role)
    current = Stage(progress.stage)
    if progress.completed_at is not None:
        return redirect(url_for("dashboards.dashboard"))
    if stages.index(page_stage) > stages.index(current):
        flash("Please finish this step first.", "info")  # no skipping ahead
        return redirect(url_for("onboarding.stage", slug=current.slug))
    if _version() is None:
        # Without the version it was based on, a save could silently overwrite another tab's.
        return _page(progress, page_stage, values=values, status=422, notice=STALE_FORM_NOTICE)
    if page_stage != current and action == "continue":
        return _save_earlier_stage(progress, page_stage, values)
    try:
        if action == "later":
            if page_stage in schemas.FIELDS:
                service.save_draft(uow(), progress.account_id, page_stage, values, _version())
            uow().commit()
            session[DEFERRED] = True
            flash("Your answers are saved. Pick up where you left off whenever you like.",
                  "success")
            return redirect(url_for("dashboards.dashboard"))
        if action == "back":
            if page_stage in schemas.FIELDS:
                service.save_draft(uow(), progress.account_id, page_stage, values, _version())
            target = stages[max(stages.index(page_stage) - 1, 0)]
            moved = service.move(uow(), progress.account_id, target)
        else:
            moved = service.move(uow(), progress.account_id,
                                 next_stage(progress.role, page_stage),
                                 values=values if page_stage in schemas.FIELDS else None,
                                 version=_version(), ip=request.remote_addr)
        uow().commit()
    except service.Conflict as conflict:
        uow().rollback()
        # Nothing is overwritten either way: show what they typed, with the newer version.
        return _page(conflict.progress, page_stage, values=values, status=409,
                     notice=CONFLICT_NOTICE)
    except service.StageIncomplete as incomplete:
        uow().rollback()
        if incomplete.stage != page_stage:
            flash("Please complete this step first.", "warning")
            return redirect(url_for("onboarding.stage", slug=incomplete.stage.slug))
        return _page(_progress(), page_stage, values=values, errors=incomplete.errors,
                     status=422)
    except service.MoveNotAllowed as refused:
        uow().rollback()
        flash(str(refused), "info")
        return redirect(url_for("onboarding.resume"))
    except schemas.DraftRejected as rejected:
        uow().rollback()
        return _page(_progress(), page_stage, values=values, errors=rejected.errors,
                     status=422)
    return _after_move(moved)


def _save_earlier_stage(progress: OnboardingProgress, page_stage: Stage,
                        values: dict[str, Any]) -> Any:
    """An edit of a stage already passed: it must stay valid; then on towards where they were."""
    _clean, errors = schemas.validate(page_stage, {**service.stage_data(progress, page_stage),
                                                   **values})
    if errors:
        return _page(progress, page_stage, values=values, errors=errors, status=422)
    try:
        service.save_draft(uow(), progress.account_id, page_stage, values, _version())
        uow().commit()
    except service.Conflict as conflict:
        uow().rollback()
        return _page(conflict.progress, page_stage, values=values, status=409,
                     notice=CONFLICT_NOTICE)
    stages = flow(progress.role)
    following = stages[stages.index(page_stage) + 1]
    return redirect(url_for("onboarding.stage", slug=following.slug))


def _after_move(progress: OnboardingProgress) -> Response:
    if progress.completed_at is not None:
        session.pop(DEFERRED, None)
        services().cache.set(_complete_key(str(progress.account_id)), b"1", 3600)
        flash("You're all set. Welcome!", "success")
        return redirect(url_for("dashboards.dashboard"))
    return redirect(url_for("onboarding.stage", slug=Stage(progress.stage).slug))


# -- API ---------------------------------------------------------------------------------------

@blueprint.get("/api/onboarding/progress")
@login_required
def api_progress() -> Any:
    progress = service.of_account(uow().session, _me().account_uuid)
    if progress is None:
        return error_response(404, "This account does not onboard.")
    return jsonify(service.snapshot(progress))


@blueprint.put("/api/onboarding/progress")
@login_required
def api_save() -> Any:
    body = json_object('{"stage": "personal-info", "data": {…}, "version": 3}')
    stage_ = Stage.from_slug(str(body.get("stage", "")))
    data = body.get("data")
    version = body.get("version")
    if stage_ is None or not isinstance(data, dict) or not isinstance(version, int) \
            or isinstance(version, bool):
        return error_response(422, "stage, data (an object) and version (a number) are needed.",
                              code="invalid")
    try:
        progress = service.save_draft(uow(), _me().account_uuid, stage_, data, version)
        uow().commit()
    except service.Conflict as conflict:
        uow().rollback()
        return error_response(409, str(conflict), code="conflict",
                              current=service.snapshot(conflict.progress))
    except schemas.DraftRejected as rejected:
        uow().rollback()
        return error_response(422, "Some fields cannot be saved.", code="invalid",
                              fields=rejected.errors)
    except service.MoveNotAllowed as refused:
        uow().rollback()
        return error_response(422, str(refused), code="invalid")
    except NotFound as missing:
        uow().rollback()
        return error_response(404, str(missing))
    return jsonify({"version": progress.version, "stage": progress.stage,
                    "saved_at": progress.updated_at.isoformat()})


@blueprint.get("/api/csrf-token")
def api_csrf_token() -> Response:
    """A fresh token, so a page left open past the token's lifetime can recover."""
    response = jsonify({"csrf_token": generate_csrf()})
    response.headers["Cache-Control"] = "no-store"
    return response
