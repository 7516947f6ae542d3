"""A second factor: the log-in challenge, enrolment (authenticator app, recovery codes), step-up,
a practice's policy, an admin's reset, and the gate that keeps a session that still owes its
second factor away from everything else.

For other features: `fresh_second_factor_required` guards a view (a person with a second factor
must have proven it in the last ten minutes; otherwise the step-up page, then back). In core,
`core.identity.stepup.require_fresh_second_factor` is the same check.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

import segno
from flask import Blueprint, Flask, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from markupsafe import Markup
from werkzeug.wrappers import Response

from core.audit import queries as audit_queries
from core.identity import mfa, mfa_policy, mfa_reset, sessions
from core.identity import recovery_codes as codes_of
from core.identity.mfa_policy import Gate
from core.identity.models import Account, Role
from core.identity.stepup import require_fresh_second_factor, second_factor_is_fresh
from core.tenancy.guard import owned
from core.tenancy.models import Tenant
from web.authn import begin_session, current, end_session_cookie, login_required, me, role_required
from web.context import services, settings, uow
from web.errors import error_response, step_up_return_path, wants_json
from web.forms import (
    ActionForm,
    FactorNameForm,
    ResetFactorsForm,
    SecondFactorForm,
    SecondFactorPolicyForm,
    errors_shown_on,
    render_form,
)
from web.redirects import safe_next_path
from web.security import auth_rate_limited

F = TypeVar("F", bound=Callable[..., Any])

blueprint = Blueprint("mfa", __name__)


# -- the guard other features use --------------------------------------------------------------

def fresh_second_factor_required(view_fn: F) -> F:
    """Place under `login_required`/`role_required`: a person with a second factor proves it
    again if their session has not in the last ten minutes (core.identity.stepup). The refusal,
    `StepUpRequired`, becomes the step-up page (web.errors), which returns here after."""

    @functools.wraps(view_fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        view = current()
        if view is not None:
            require_fresh_second_factor(uow().session, view)
        return view_fn(*args, **kwargs)

    return cast(F, wrapper)


# -- the gate ----------------------------------------------------------------------------------

# What a session that owes its second factor may still reach (static files and health probes
# never load a session at all: web.authn.SESSIONLESS_PATHS).
OPEN_WHILE_CHALLENGED = frozenset({"mfa.challenge", "passkeys.authentication_options",
                                   "passkeys.authenticate", "auth.logout", "static"})
OPEN_WHILE_ENROLLING = frozenset({"mfa.overview", "mfa.start_totp", "mfa.enrol_totp",
                                  "mfa.recovery_codes", "passkeys.registration_options",
                                  "passkeys.register", "auth.logout", "static"})


def _gate() -> ResponseReturnValue | None:
    view = current()
    if view is None or view.gate is None:
        return None
    endpoint = request.endpoint or ""
    if endpoint.startswith("health."):
        return None
    if view.gate == Gate.CHALLENGE:
        if endpoint in OPEN_WHILE_CHALLENGED:
            return None
        target = url_for("mfa.challenge", next=step_up_return_path() or None)
        message = "Enter the code from your second factor first."
    else:
        if endpoint in OPEN_WHILE_ENROLLING:
            return None
        target = url_for("mfa.overview")
        message = "Your practice asks for a second factor: set one up first."
    if wants_json():
        return error_response(403, message, code="second_factor_required")
    return redirect(target)


def init_app(app: Flask) -> None:
    """After web.authn (the session is loaded first, and its `me` for templates is set first:
    a session that owes its second factor shows pages as to someone not logged in — no menu,
    no bell, no notification stream — apart from its own way out)."""
    app.before_request(_gate)

    @app.context_processor
    def _gated_session_is_not_in_yet() -> dict[str, Any]:
        view = current()
        return {"me": None, "gated": view} if view is not None and view.gate else {}


# -- log-in challenge --------------------------------------------------------------------------

@blueprint.route("/login/second-factor", methods=["GET", "POST"])
@auth_rate_limited
def challenge() -> ResponseReturnValue:
    view = current()
    if view is None:
        return redirect(url_for("auth.login"))
    next_path = safe_next_path(request.values.get("next"))
    if view.gate != Gate.CHALLENGE:
        return redirect(next_path or url_for("dashboards.dashboard"))
    if mfa.challenge_expired(view):
        sessions.end(uow().session, view.id_hash, "expired_challenge")
        end_session_cookie()
        flash("That took too long. Please log in again.", "info")
        return redirect(url_for("auth.login"))
    form = SecondFactorForm(next=next_path or "")
    if form.validate_on_submit():
        with errors_shown_on(form):
            raw = mfa.complete_login(uow(), settings(), view, form.code.data or "")
            begin_session(raw)
            return redirect(next_path or url_for("dashboards.dashboard"))
    return render_form("mfa/challenge.html", form)


# -- step-up -----------------------------------------------------------------------------------

@blueprint.route("/account/step-up", methods=["GET", "POST"])
@login_required
@auth_rate_limited
def step_up() -> ResponseReturnValue:
    next_path = safe_next_path(request.values.get("next"))
    view = me()
    if second_factor_is_fresh(view) or not mfa_policy.has_second_factor(uow().session,
                                                                        view.identity_uuid):
        return redirect(next_path or url_for("mfa.overview"))
    form = SecondFactorForm(next=next_path or "")
    if form.validate_on_submit():
        with errors_shown_on(form):
            mfa.step_up(uow(), settings(), view, form.code.data or "")
            flash("Thank you. For the next 10 minutes you will not be asked again.", "success")
            return redirect(next_path or url_for("mfa.overview"))
    return render_form("mfa/step_up.html", form)


# -- your second factors -----------------------------------------------------------------------

@blueprint.get("/account/second-factor")
@login_required
def overview() -> str:
    view = me()
    session = uow().session
    return render_template(
        "mfa/overview.html", factors=mfa.factors_of(session, view.identity_uuid),
        codes_left=codes_of.left(session, view.identity_uuid),
        action_form=ActionForm(), enrolling=view.gate == Gate.ENROL,
        activity=audit_queries.cached_security_activity(session, services().regions,
                                                        view.identity_uuid))


@blueprint.post("/account/second-factor/app")
@login_required
def start_totp() -> Response:
    if ActionForm().validate_on_submit():
        mfa.begin_totp(uow(), settings(), me())
        return redirect(url_for("mfa.enrol_totp"))
    return redirect(url_for("mfa.overview"))


def _qr_svg(uri: str) -> Markup:
    """The QR code as inline SVG: presentation attributes only, no <style>, no script (CSP)."""
    svg = segno.make(uri, error="m").svg_inline(scale=5, border=2, dark="#000",
                                                 light="#fff")
    return Markup(svg.replace(  # noqa: S704 - segno's own markup; the URI is ours
        "<svg ", '<svg role="img" aria-label="QR code to scan with your authenticator app" ', 1))


@blueprint.route("/account/second-factor/app/confirm", methods=["GET", "POST"])
@login_required
def enrol_totp() -> ResponseReturnValue:
    view = me()
    factor = mfa.pending_totp(uow().session, view.identity_uuid)
    if factor is None:
        return redirect(url_for("mfa.overview"))
    form = SecondFactorForm()
    if form.validate_on_submit():
        with errors_shown_on(form):
            codes = mfa.confirm_totp(uow(), settings(), view, form.code.data or "")
            if codes:
                return render_template("mfa/recovery_codes.html", codes=codes, first=True)
            flash("Your authenticator app is set up.", "success")
            return redirect(url_for("mfa.overview"))
    setup = mfa.totp_setup(settings(), factor, view.email)
    return render_form("mfa/enrol_totp.html", form, secret=setup.secret, qr=_qr_svg(setup.uri))


@blueprint.post("/account/second-factor/recovery-codes")
@login_required
@fresh_second_factor_required
def recovery_codes() -> ResponseReturnValue:
    if not ActionForm().validate_on_submit():
        return redirect(url_for("mfa.overview"))
    codes = codes_of.issue(uow(), me())
    return render_template("mfa/recovery_codes.html", codes=codes, first=False)


@blueprint.post("/account/second-factor/<uuid:factor_id>/name")
@login_required
def rename(factor_id: Any) -> ResponseReturnValue:
    mfa.own_factor(uow().session, me(), factor_id)  # another person's: not found
    form = FactorNameForm()
    if form.validate_on_submit():
        with errors_shown_on(form):
            mfa.rename_factor(uow(), me(), factor_id, form.name.data or "")
            flash("Renamed.", "success")
            return redirect(url_for("mfa.overview"))
        flash(" ".join(form.form_errors) or "Give it a name of 1 to 64 characters.", "warning")
    return redirect(url_for("mfa.overview"))


@blueprint.post("/account/second-factor/<uuid:factor_id>/remove")
@login_required
def remove(factor_id: Any) -> Response:
    mfa.own_factor(uow().session, me(), factor_id)  # another person's: not found, no step-up
    require_fresh_second_factor(uow().session, me())
    if ActionForm().validate_on_submit():
        mfa.remove_factor(uow(), me(), factor_id)
        flash("That second factor is removed. We e-mailed you a notice.", "success")
    return redirect(url_for("mfa.overview"))


# -- a practice's policy -----------------------------------------------------------------------

def _therapist_account() -> Account:
    return owned(uow().session, Account, me().account_uuid)


@blueprint.route("/settings/practice/second-factor", methods=["GET", "POST"])
@role_required(Role.THERAPIST)
def practice_policy() -> ResponseReturnValue:
    tenant = uow().session.get(Tenant, me().tenant_uuid) if me().tenant_uuid else None
    current_policy = mfa_policy.practice_policy(tenant)
    form = SecondFactorPolicyForm(policy=str(current_policy))
    if form.validate_on_submit():
        with errors_shown_on(form):
            mfa_policy.set_practice_policy(uow(), _therapist_account(), form.policy.data or "")
            flash("Saved. People it applies to set up a second factor at their next log-in.",
                  "success")
            return redirect(url_for("mfa.practice_policy"))
    return render_form("mfa/practice_policy.html", form, tenant=tenant)


# -- an admin's reset --------------------------------------------------------------------------

@blueprint.route("/admin/second-factor", methods=["GET", "POST"])
@role_required(Role.ADMIN)
@fresh_second_factor_required
def admin_reset() -> ResponseReturnValue:
    form = ResetFactorsForm()
    if form.validate_on_submit():
        with errors_shown_on(form):
            admin = owned(uow().session, Account, me().account_uuid)
            identity = mfa_reset.reset_factors(uow(), admin, form.email.data or "")
            flash(f"Every second factor of {identity.email} is removed, their sessions are "
                  "logged out, and they are told by e-mail.", "success")
            return redirect(url_for("mfa.admin_reset"))
    return render_form("mfa/admin_reset.html", form)
