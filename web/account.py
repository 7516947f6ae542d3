"""Your login: sessions on other devices, password, e-mail confirmation."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from werkzeug.wrappers import Response

from core.errors import NotFound, ValidationFailed
from core.events.types import EventType
from core.identity import service, sessions
from web.authn import current, login_required
from web.context import services, uow
from web.forms import ActionForm, ChangePasswordForm, apply_errors
from web.useragent import describe

blueprint = Blueprint("account", __name__, url_prefix="/account")


def _me() -> sessions.SessionView:
    view = current()
    assert view is not None
    return view


@blueprint.get("/sessions")
@login_required
def list_sessions() -> str:
    records = sessions.live_sessions(uow().session, _me().identity_uuid)
    rows = [{"record": r, "device": describe(r.user_agent), "current": r.id_hash == _me().id_hash}
            for r in records]
    return render_template("account/sessions.html", rows=rows, form=ActionForm())


@blueprint.post("/sessions/<id_hash>/revoke")
@login_required
def revoke_session(id_hash: str) -> Response:
    if ActionForm().validate_on_submit():
        try:
            service.revoke_session(uow(), services().cache, _me(), id_hash)
        except NotFound:
            abort(404)  # not one of yours: never say whether it exists
        uow().commit()
        flash("That session is logged out.", "success")
    return redirect(url_for("account.list_sessions"))


@blueprint.post("/sessions/revoke-others")
@login_required
def revoke_other_sessions() -> Response:
    if ActionForm().validate_on_submit():
        ended = service.revoke_other_sessions(uow(), services().cache, _me())
        uow().commit()
        flash(f"Logged out everywhere else ({ended} session{'s' if ended != 1 else ''}).",
              "success")
    return redirect(url_for("account.list_sessions"))


@blueprint.route("/password", methods=["GET", "POST"])
@login_required
def change_password() -> Any:
    form = ChangePasswordForm()
    if not form.validate_on_submit():
        return render_template("account/password.html", form=form), 422 if form.errors else 200
    try:
        service.change_password(uow(), services().cache, _me(),
                                current=form.current_password.data or "",
                                new=form.new_password.data or "")
    except ValidationFailed as failed:
        uow().rollback()
        apply_errors(form, failed)
        return render_template("account/password.html", form=form), 422
    uow().commit()
    flash("Your password is changed, and every other session was logged out.", "success")
    return redirect(url_for("dashboards.dashboard"))


@blueprint.post("/resend-verification")
@login_required
def resend_verification() -> Response:
    view = _me()
    if ActionForm().validate_on_submit() and not view.email_verified:
        uow().record(EventType.EMAIL_VERIFICATION_REQUESTED, subject=f"identity:{view.identity_id}")
        uow().commit()
        flash(f"We sent a new confirmation link to {view.email}.", "info")
    return redirect(url_for("dashboards.dashboard"))
