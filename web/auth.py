"""Sign-up, joining a practice, invitations, login, logout, role switching, verification, resets."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response

from core.errors import DomainError, Forbidden, NotFound, ValidationFailed
from core.events.types import EventType
from core.identity import service, sessions, tokens
from core.identity.models import Identity, Role, TokenPurpose
from core.tenancy.models import Tenant
from web.authn import begin_session, current, end_session_cookie, login_required, record_security
from web.context import services, settings, uow
from web.forms import (
    AcceptInvitationForm,
    ActionForm,
    EmailForm,
    JoinForm,
    LoginForm,
    NameForm,
    NewPasswordForm,
    PracticeForm,
    SignupForm,
    SwitchRoleForm,
    apply_errors,
)
from web.redirects import safe_next_path
from web.security import auth_rate_limited

blueprint = Blueprint("auth", __name__)


def _dashboard() -> Response:
    return redirect(url_for("dashboards.dashboard"))


def _check_email(reason: str) -> str:
    return render_template("auth/check_email.html", reason=reason)


def _invalid(template: str, form: Any, failed: ValidationFailed, **context: Any) -> tuple[str, int]:
    uow().rollback()
    apply_errors(form, failed)
    return render_template(template, form=form, **context), 422


# -- sign-up -----------------------------------------------------------------------------------

@blueprint.route("/signup", methods=["GET", "POST"])
@auth_rate_limited
def signup() -> Any:
    view = current()
    if view is not None:
        return _start_practice_as(view)
    form = SignupForm()
    if not form.validate_on_submit():
        return render_template("auth/signup.html", form=form), 422 if form.errors else 200
    try:
        service.signup_therapist(uow(), practice_name=form.practice_name.data or "",
                                 display_name=form.display_name.data or "",
                                 email=form.email.data or "", password=form.password.data or "")
        uow().commit()
    except ValidationFailed as failed:
        return _invalid("auth/signup.html", form, failed)
    except IntegrityError:
        uow().rollback()  # the same address or practice name, a moment earlier: same answer
    return _check_email("signup")


def _start_practice_as(view: sessions.SessionView) -> Any:
    if any(a.role == Role.THERAPIST for a in view.accounts):
        flash("You already run a practice.", "info")
        return _dashboard()
    form = PracticeForm()
    if not form.validate_on_submit():
        return render_template("auth/start_practice.html", form=form), 422 if form.errors else 200
    try:
        service.add_therapist_account(uow(), view.identity_uuid,
                                      practice_name=form.practice_name.data or "",
                                      display_name=form.display_name.data or "")
        _switch_into(view, Role.THERAPIST)
    except ValidationFailed as failed:
        return _invalid("auth/start_practice.html", form, failed)
    flash("Your practice is created. Welcome, therapist.", "success")
    return _dashboard()


def _switch_into(view: sessions.SessionView, role: str) -> None:
    """After adding an account, move into it with a fresh session id."""
    unit = uow()
    unit.session.flush()
    sessions.forget_cached(unit.session, services().cache, view.identity_uuid)
    result = service.switch_role(unit, services().cache, view, role)
    unit.commit()
    begin_session(result.raw_session_id)


@blueprint.route("/join/<slug>", methods=["GET", "POST"])
@auth_rate_limited
def join(slug: str) -> Any:
    try:
        tenant = service.practice_to_join(uow().session, slug)
    except NotFound as missing:
        return render_template("auth/no_practice.html", message=str(missing)), 404
    view = current()
    if view is not None:
        return _join_as(view, tenant)
    form = JoinForm()
    if not form.validate_on_submit():
        return (render_template("auth/join.html", form=form, tenant=tenant),
                422 if form.errors else 200)
    try:
        service.signup_client(uow(), tenant_slug=slug, display_name=form.display_name.data or "",
                              email=form.email.data or "", password=form.password.data or "")
        uow().commit()
    except ValidationFailed as failed:
        return _invalid("auth/join.html", form, failed, tenant=tenant)
    except IntegrityError:
        uow().rollback()
    return _check_email("join")


def _join_as(view: sessions.SessionView, tenant: Any) -> Any:
    if any(a.role == Role.CLIENT for a in view.accounts):
        flash("You already have a client account; one person is a client of one practice here.",
              "warning")
        return _dashboard()
    form = NameForm(display_name=view.display_name)
    if not form.validate_on_submit():
        return (render_template("auth/join_as.html", form=form, tenant=tenant),
                422 if form.errors else 200)
    try:
        service.add_client_account(uow(), view.identity_uuid, tenant,
                                   display_name=form.display_name.data or "")
        _switch_into(view, Role.CLIENT)
    except ValidationFailed as failed:
        return _invalid("auth/join_as.html", form, failed, tenant=tenant)
    flash(f"You have joined {tenant.name} as a client.", "success")
    return _dashboard()


# -- invitations -------------------------------------------------------------------------------

@blueprint.route("/invite/<token>", methods=["GET", "POST"])
@auth_rate_limited
def accept_invitation(token: str) -> Any:
    try:
        invitation = service.open_invitation(uow().session, token)
    except NotFound as error:
        return render_template("auth/link_invalid.html", message=str(error)), 404
    tenant = uow().session.get(Tenant, invitation.tenant_id)
    view = current()
    registered = service.identity_by_email(uow().session, invitation.email) is not None
    if view is None and registered:
        return render_template("auth/invitation_login.html", invitation=invitation,
                               tenant=tenant, next=request.path)
    form = NameForm() if view is not None else AcceptInvitationForm()
    context = {"form": form, "invitation": invitation, "tenant": tenant}
    if not form.validate_on_submit():
        return render_template("auth/invitation.html", **context), 422 if form.errors else 200
    try:
        if view is not None:
            service.accept_invitation(uow(), token, display_name=form.display_name.data or "",
                                      identity_id=view.identity_uuid)
            _switch_into(view, Role.CLIENT)
        else:
            account = service.accept_invitation(uow(), token,
                                                display_name=form.display_name.data or "",
                                                password=form.password.data or "")
            identity = uow().session.get(Identity, account.identity_id)
            assert identity is not None
            result = service.log_in_verified(uow(), identity)
            uow().commit()
            begin_session(result.raw_session_id)
    except ValidationFailed as failed:
        return _invalid("auth/invitation.html", form, failed, invitation=invitation,
                        tenant=tenant)
    except Forbidden as error:
        uow().rollback()
        flash(str(error), "error")
        return render_template("auth/invitation.html", **context), 403
    flash(f"Welcome to {tenant.name}.", "success")
    return _dashboard()


# -- login, logout, role switch ----------------------------------------------------------------

@blueprint.route("/login", methods=["GET", "POST"])
@auth_rate_limited
def login() -> Any:
    form = LoginForm(next=request.args.get("next", ""))
    if current() is not None and request.method == "GET":
        return redirect(safe_next_path(form.next.data) or url_for("dashboards.dashboard"))
    if not form.validate_on_submit():
        return render_template("auth/login.html", form=form), 422 if form.errors else 200
    unit = uow()
    try:
        result = service.login(unit, settings(), email=form.email.data or "",
                               password=form.password.data or "")
    except service.NotVerified as error:
        unit.commit()  # keeps the request for a new verification e-mail
        return render_template("auth/login.html", form=form, notice=str(error)), 403
    except service.LoginFailed as error:
        unit.commit()  # keeps the failure count (and a lockout, if this was one too many)
        subject = f"identity:{error.identity_id}" if error.identity_id else None
        record_security(EventType.LOGIN_FAILED, subject=subject,
                        email_domain=_domain(form.email.data))
        form.form_errors.append(str(error))
        return render_template("auth/login.html", form=form), 401
    unit.commit()
    begin_session(result.raw_session_id)
    return redirect(safe_next_path(form.next.data) or url_for("dashboards.dashboard"))


def _domain(email: str | None) -> str:
    # Enough to spot a campaign against one organisation; the full address is not logged.
    return (email or "").rsplit("@", 1)[-1][:100].lower()


@blueprint.post("/logout")
def logout() -> Response:
    view = current()
    if view is not None and ActionForm().validate_on_submit():
        service.logout(uow(), services().cache, view)
        uow().commit()
    end_session_cookie()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))


@blueprint.post("/switch-role")
@login_required
def switch_role() -> Any:
    view = current()
    assert view is not None
    form = SwitchRoleForm()
    if not form.validate_on_submit():
        flash("Choose one of your roles.", "error")
        return _dashboard()
    try:
        result = service.switch_role(uow(), services().cache, view, form.role.data or "")
    except NotFound as error:
        flash(str(error), "error")
        return _dashboard()
    uow().commit()
    begin_session(result.raw_session_id)
    flash(f"You are now working as {Role(result.account.role).label.lower()}.", "success")
    return _dashboard()


# -- links from e-mails ------------------------------------------------------------------------

@blueprint.route("/verify-email/<token>", methods=["GET", "POST"])
@auth_rate_limited
def verify_email(token: str) -> Any:
    # A GET only shows a button: mail scanners that prefetch links must not use them up.
    form = ActionForm()
    if not form.validate_on_submit():
        if tokens.peek(uow().session, token, TokenPurpose.VERIFY_EMAIL) is None:
            return render_template("auth/link_invalid.html", message="This confirmation link is "
                                   "not valid any more. Log in to get a new one."), 404
        return render_template("auth/verify_email.html", form=form)
    try:
        identity = service.verify_email(uow(), token)
        result = service.log_in_verified(uow(), identity)
    except NotFound as error:
        uow().rollback()
        return render_template("auth/link_invalid.html", message=str(error)), 404
    uow().commit()
    begin_session(result.raw_session_id)
    flash("Thank you, your e-mail address is confirmed.", "success")
    return _dashboard()


@blueprint.route("/forgot-password", methods=["GET", "POST"])
@auth_rate_limited
def forgot_password() -> Any:
    form = EmailForm()
    if not form.validate_on_submit():
        return render_template("auth/forgot_password.html", form=form), 422 if form.errors else 200
    try:
        service.request_password_reset(uow(), form.email.data or "")
    except ValidationFailed as failed:
        return _invalid("auth/forgot_password.html", form, failed)
    uow().commit()
    return _check_email("reset")


@blueprint.route("/reset-password/<token>", methods=["GET", "POST"])
@auth_rate_limited
def reset_password(token: str) -> Any:
    return _new_password(token, TokenPurpose.RESET_PASSWORD)


@blueprint.route("/set-password/<token>", methods=["GET", "POST"])
@auth_rate_limited
def set_password(token: str) -> Any:
    return _new_password(token, TokenPurpose.SET_PASSWORD)


def _new_password(token: str, purpose: TokenPurpose) -> Any:
    if tokens.peek(uow().session, token, purpose) is None:
        return render_template("auth/link_invalid.html", message="This link is not valid any "
                               "more. Ask for a new one."), 404
    form = NewPasswordForm()
    if not form.validate_on_submit():
        return (render_template("auth/new_password.html", form=form, purpose=str(purpose)),
                422 if form.errors else 200)
    try:
        identity = service.reset_password(uow(), services().cache, token, form.password.data or "",
                                          purpose)
        result = service.log_in_verified(uow(), identity)
    except ValidationFailed as failed:
        return _invalid("auth/new_password.html", form, failed, purpose=str(purpose))
    except DomainError as error:
        uow().rollback()
        return render_template("auth/link_invalid.html", message=str(error)), 404
    uow().commit()
    begin_session(result.raw_session_id)
    flash("Your new password is set, and every other session was logged out.", "success")
    return _dashboard()
