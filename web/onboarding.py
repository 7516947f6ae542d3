"""The onboarding wizard: one page per stage, plain form posts that work without JavaScript,
and a small JSON API that the auto-save script uses on top.

Where a person may go is decided in core (core.onboarding.navigation); these views only read
forms and JSON in, and turn its answers into pages, redirects and JSON out."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Response,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import generate_csrf
from werkzeug.wrappers import Response as WerkzeugResponse

from core.identity.sessions import SessionView
from core.onboarding import navigation, schemas, service
from core.onboarding.navigation import GoTo, ShowStage
from core.onboarding.stages import Stage, flow
from web.authn import login_required, me, role_required
from web.context import services, uow
from web.display import STAGE_LABELS
from web.errors import status_for
from web.inputs import json_object

blueprint = Blueprint("onboarding", __name__)

# "Save & Continue Later" lasts for this browser session: the dashboard then shows a banner.
DEFERRED = "onboarding_deferred"
LABELS = STAGE_LABELS


# -- the gate, for the dashboards --------------------------------------------------------------

def detour(view: SessionView) -> WerkzeugResponse | None:
    """Where an account whose onboarding is not complete goes instead of its dashboard."""
    if view.role == "admin":
        return None
    return _go(navigation.detour(uow(), services().regions, view.account_uuid,
                                 deferred=bool(session.get(DEFERRED))))


def unfinished_stage(view: SessionView | None) -> Stage | None:
    """For the resume banner on the dashboards."""
    if view is None or view.role == "admin":
        return None
    return navigation.unfinished_stage(uow().session, services().regions, view.account_uuid)


def _go(outcome: GoTo | None) -> WerkzeugResponse | None:
    if outcome is None:
        return None
    if outcome.notice:
        flash(outcome.notice, outcome.level)
    if outcome.deferred:
        session[DEFERRED] = True
    if outcome.completed:
        session.pop(DEFERRED, None)
    if outcome.stage is None:
        return redirect(url_for("dashboards.dashboard"))
    return redirect(url_for("onboarding.stage", slug=outcome.stage.slug))


# -- pages -------------------------------------------------------------------------------------

def _answer(outcome: ShowStage | GoTo) -> ResponseReturnValue:
    if isinstance(outcome, GoTo):
        response = _go(outcome)
        assert response is not None
        return response
    return _page(outcome)


def _page(shown: ShowStage) -> tuple[str, int]:
    progress, stage = shown.progress, shown.stage
    stages: list[Stage] = [s for s in flow(progress.role) if s != Stage.COMPLETED]
    values = shown.values if shown.values is not None else service.stage_data(progress, stage)
    status = status_for(shown.refusal) if shown.refusal is not None else 200
    return render_template(
        "onboarding/stage.html", progress=progress, stage=stage, stages=stages, labels=LABELS,
        current_index=stages.index(Stage(progress.stage)) if progress.stage in stages
        else len(stages),
        fields=schemas.FIELDS.get(stage, ()), values=values, errors=shown.errors,
        notice=shown.notice, languages=schemas.LANGUAGES, specialties=schemas.SPECIALTIES,
        time_zones=schemas.time_zones(), terms_version=schemas.TERMS_VERSION,
    ), status


@blueprint.get("/onboarding")
@role_required("client", "therapist")
def resume() -> ResponseReturnValue:
    return _answer(navigation.resume(uow().session, me().account_uuid))


@blueprint.get("/onboarding/<slug>")
@role_required("client", "therapist")
def stage(slug: str) -> ResponseReturnValue:
    return _answer(navigation.open_stage(uow().session, me().account_uuid, slug))


@blueprint.post("/onboarding/<slug>")
@role_required("client", "therapist")
def submit(slug: str) -> ResponseReturnValue:
    page_stage = Stage.from_slug(slug)
    action = request.form.get("action", "continue")
    return _answer(navigation.submit_stage(
        uow(), me().account_uuid, slug,
        action=action if action in navigation.ACTIONS else "continue",
        values=_typed(page_stage) if page_stage else {}, version=_version(),
        ip=request.remote_addr))


def _typed(stage_: Stage) -> dict[str, Any]:
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


# -- API ---------------------------------------------------------------------------------------

@blueprint.get("/api/onboarding/progress")
@login_required
def api_progress() -> Response:
    return jsonify(service.snapshot(navigation.progress_of(uow().session, me().account_uuid)))


@blueprint.put("/api/onboarding/progress")
@login_required
def api_save() -> Response:
    body = json_object('{"stage": "personal-info", "data": {…}, "version": 3}')
    stage_ = Stage.from_slug(str(body.get("stage", "")))
    data, version = body.get("data"), body.get("version")
    if stage_ is None or not isinstance(data, dict) or not isinstance(version, int) \
            or isinstance(version, bool):
        raise service.MoveNotAllowed("stage, data (an object) and version (a number) are "
                                     "needed.")
    progress = service.save_draft(uow(), me().account_uuid, stage_, data, version)
    return jsonify({"version": progress.version, "stage": progress.stage,
                    "saved_at": progress.updated_at.isoformat()})


@blueprint.post("/api/onboarding/complete")
@login_required
def api_complete() -> Response:
    """The seed's endpoint: every stage's answers at once, then completion by the same rules as
    the pages (200 with the completed state; 409 with the server's copy; 422 with the stage and
    its field errors)."""
    body = json_object('{"version": 3, "answers": {"personal-info": {…}, "terms": {…}}}')
    answers, version = body.get("answers", {}), body.get("version")
    if not isinstance(answers, dict) or not isinstance(version, int) or isinstance(version, bool):
        raise service.MoveNotAllowed("answers (an object keyed by stage) and version (a number) "
                                     "are needed.")
    progress = navigation.finish(uow(), me().account_uuid, answers, version=version,
                                 ip=request.remote_addr)
    session.pop(DEFERRED, None)
    return jsonify(service.snapshot(progress))


@blueprint.get("/api/csrf-token")
def api_csrf_token() -> Response:
    """A fresh token, so a page left open past the token's lifetime can recover."""
    response = jsonify({"csrf_token": generate_csrf()})
    response.headers["Cache-Control"] = "no-store"
    return response
