"""Your login: sessions on other devices, password, e-mail confirmation."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from core.identity import credentials, sessions
from web.authn import login_required, me
from web.context import services, uow
from web.forms import ActionForm, ChangePasswordForm, errors_shown_on, render_form
from web.mfa import fresh_second_factor_required
from web.useragent import describe

blueprint = Blueprint("account", __name__, url_prefix="/account")


@blueprint.get("/sessions")
@login_required
def list_sessions() -> str:
    records = sessions.live_sessions(uow().session, me().identity_uuid)
    rows = [{"record": r, "device": describe(r.user_agent), "current": r.id_hash == me().id_hash}
            for r in records]
    return render_template("account/sessions.html", rows=rows, form=ActionForm())


@blueprint.post("/sessions/<id_hash>/revoke")
@login_required
def revoke_session(id_hash: str) -> Response:
    if ActionForm().validate_on_submit():
        sessions.revoke_session(uow(), me(), id_hash)
        flash("That session is logged out.", "success")
    return redirect(url_for("account.list_sessions"))


@blueprint.post("/sessions/revoke-others")
@login_required
def revoke_other_sessions() -> Response:
    if ActionForm().validate_on_submit():
        ended = sessions.revoke_other_sessions(uow(), me())
        flash(f"Logged out everywhere else ({ended} session{'s' if ended != 1 else ''}).",
              "success")
    return redirect(url_for("account.list_sessions"))


@blueprint.route("/password", methods=["GET", "POST"])
@login_required
@fresh_second_factor_required
def change_password() -> ResponseReturnValue:
    form = ChangePasswordForm()
    if form.validate_on_submit():
        with errors_shown_on(form):
            credentials.change_password(uow(), me(),
                                        current=form.current_password.data or "",
                                        new=form.new_password.data or "")
            flash("Your password is changed, and every other session was logged out.",
                  "success")
            return redirect(url_for("dashboards.dashboard"))
    return render_form("account/password.html", form)


@blueprint.post("/resend-verification")
@login_required
def resend_verification() -> Response:
    if ActionForm().validate_on_submit() and credentials.resend_verification(
            uow(), services().cache, me()):
        flash(f"We sent a new confirmation link to {me().email}.", "info")
    return redirect(url_for("dashboards.dashboard"))
