"""Sign-up, joining a practice, invitations, login, logout, role switching, verification, resets.

Each view reads its form, calls one core use case and answers with a page or a redirect. The
request boundary commits (web.context); a rule's refusal lands on the form (web.forms) or, for
anything else, on the one error map (web.errors).
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from core.identity import credentials, invitations, login, signup, tokens
from core.identity.directory import identity_by_email
from core.identity.mfa_policy import Gate
from core.identity.models import Identity, Role, TokenPurpose
from core.identity.sessions import SessionView
from core.tenancy.models import Tenant
from web.authn import begin_session, current, end_session_cookie, login_required, me
from web.context import settings, uow
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
    errors_shown_on,
    render_form,
)
from web.page_cache import render_blank_form
from web.redirects import safe_next_path
from web.security import auth_rate_limited

blueprint = Blueprint("auth", __name__)


def _dashboard() -> Response:
    return redirect(url_for("dashboards.dashboard"))


def _check_email(reason: str) -> str:
    return render_template("auth/check_email.html", reason=reason)


def _logged_in(identity: Identity) -> str:
    """A link proved the address: a session (gated, for a person with a second factor)."""
    return login.log_in_verified(uow(), identity, settings=settings()).raw_session_id


def _move_into(view: SessionView, role: str) -> None:
    """After adding an account to a logged-in person: into it, with a fresh session id."""
    result = login.session_for_new_account(uow(), view, role)
    begin_session(result.raw_session_id)


# -- sign-up -----------------------------------------------------------------------------------

@blueprint.route("/signup", methods=["GET", "POST"], endpoint="signup")
@auth_rate_limited
def signup_page() -> ResponseReturnValue:
    view = current()
    if view is not None:
        return _start_practice_as(view)
    if request.method == "GET" and not request.args:
        return render_blank_form("auth/signup.html", SignupForm)
    form = SignupForm()
    if form.validate_on_submit():
        with errors_shown_on(form):
            signup.signup_therapist(uow(), practice_name=form.practice_name.data or "",
                                    display_name=form.display_name.data or "",
                                    email=form.email.data or "",
                                    password=form.password.data or "")
            return _check_email("signup")
    return render_form("auth/signup.html", form)


def _start_practice_as(view: SessionView) -> ResponseReturnValue:
    if any(a.role == Role.THERAPIST for a in view.accounts):
        flash("You already run a practice.", "info")
        return _dashboard()
    form = PracticeForm()
    if form.validate_on_submit():
        with errors_shown_on(form):
            signup.add_therapist_account(uow(), view.identity_uuid,
                                         practice_name=form.practice_name.data or "",
                                         display_name=form.display_name.data or "")
            _move_into(view, Role.THERAPIST)
            flash("Your practice is created. Welcome, therapist.", "success")
            return _dashboard()
    return render_form("auth/start_practice.html", form)


@blueprint.route("/join/<slug>", methods=["GET", "POST"])
@blueprint.route("/join/<slug>/<code>", methods=["GET", "POST"])
@auth_rate_limited
def join(slug: str, code: str | None = None) -> ResponseReturnValue:
    tenant = signup.practice_to_join(uow().session, slug, code)
    view = current()
    if view is not None:
        return _join_as(view, tenant)
    form = JoinForm()
    if form.validate_on_submit():
        with errors_shown_on(form):
            signup.signup_client(uow(), tenant_slug=slug, join_code=code,
                                 display_name=form.display_name.data or "",
                                 email=form.email.data or "", password=form.password.data or "")
            return _check_email("join")
    return render_form("auth/join.html", form, tenant=tenant)


def _join_as(view: SessionView, tenant: Tenant) -> ResponseReturnValue:
    if any(a.role == Role.CLIENT for a in view.accounts):
        flash("You already have a client account; one person is a client of one practice here.",
              "warning")
        return _dashboard()
    form = NameForm(display_name=view.display_name)
    if form.validate_on_submit():
        with errors_shown_on(form):
            signup.add_client_account(uow(), view.identity_uuid, tenant,
                                      display_name=form.display_name.data or "")
            _move_into(view, Role.CLIENT)
            flash(f"You have joined {tenant.name} as a client.", "success")
            return _dashboard()
    return render_form("auth/join_as.html", form, tenant=tenant)


# -- invitations -------------------------------------------------------------------------------

@blueprint.route("/invite/<token>", methods=["GET", "POST"])
@auth_rate_limited
def accept_invitation(token: str) -> ResponseReturnValue:
    session = uow().session
    link = invitations.follow_link(session, token)
    if link.invitation is None or link.state != invitations.InvitationState.PENDING:
        return _unusable_invitation(link, token)
    invitation, tenant = link.invitation, link.tenant
    view = current()
    registered = identity_by_email(session, invitation.email) is not None
    if view is None and registered:
        return render_template("auth/invitation_login.html", invitation=invitation,
                               tenant=tenant, next=request.path)
    form = NameForm() if view is not None else AcceptInvitationForm()
    if form.validate_on_submit():
        with errors_shown_on(form):
            if view is not None:
                invitations.accept_invitation(uow(), token,
                                              display_name=form.display_name.data or "",
                                              identity_id=view.identity_uuid)
                _move_into(view, Role.CLIENT)
            else:
                assert isinstance(form, AcceptInvitationForm)
                account = invitations.accept_invitation(
                    uow(), token, display_name=form.display_name.data or "",
                    password=form.password.data or "")
                identity = login.identity_of(session, account.identity_id)
                begin_session(_logged_in(identity))
            flash(f"Welcome to {tenant.name if tenant else 'your practice'}.", "success")
            return _dashboard()
    return render_form("auth/invitation.html", form, invitation=invitation, tenant=tenant)


def _unusable_invitation(link: invitations.InvitationLink, token: str) -> tuple[str, int]:
    """A used, expired, withdrawn or unknown link: what happened, and what to do next.
    A 404 for unknown links; otherwise 410 Gone: the invitation existed and is over."""
    status = 404 if link.state is None else 410
    return render_template("auth/invitation_unusable.html", link=link, token=token,
                           form=ActionForm()), status


@blueprint.post("/invite/<token>/renew")
@auth_rate_limited
def request_new_invitation(token: str) -> ResponseReturnValue:
    if not ActionForm().validate_on_submit():
        return redirect(url_for("auth.accept_invitation", token=token))
    link = invitations.request_renewal(uow(), token)
    name = link.tenant.name if link.tenant else "The practice"
    return render_template("auth/invitation_renewal_asked.html", tenant=link.tenant, name=name)


# -- login, logout, role switch ----------------------------------------------------------------

@blueprint.route("/login", methods=["GET", "POST"], endpoint="login")
@auth_rate_limited
def login_page() -> ResponseReturnValue:
    if request.method == "GET" and not request.args and current() is None:
        return render_blank_form("auth/login.html", LoginForm)
    form = LoginForm(next=request.args.get("next", ""))
    if current() is not None and request.method == "GET":
        return redirect(safe_next_path(form.next.data) or url_for("dashboards.dashboard"))
    if form.validate_on_submit():
        with errors_shown_on(form):
            result = login.login(uow(), settings(), email=form.email.data or "",
                                 password=form.password.data or "")
            begin_session(result.raw_session_id)
            next_path = safe_next_path(form.next.data)
            if result.gate == Gate.CHALLENGE:
                return redirect(url_for("mfa.challenge", next=next_path))
            if result.gate == Gate.ENROL:
                return redirect(url_for("mfa.overview"))
            return redirect(next_path or url_for("dashboards.dashboard"))
    return render_form("auth/login.html", form)


@blueprint.post("/logout")
def logout() -> Response:
    view = current()
    if view is not None and ActionForm().validate_on_submit():
        login.logout(uow(), view)
    end_session_cookie()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))


@blueprint.post("/switch-role")
@login_required
def switch_role() -> Response:
    form = SwitchRoleForm()
    if not form.validate_on_submit():
        flash("Choose one of your roles.", "error")
        return _dashboard()
    result = login.switch_role(uow(), me(), form.role.data or "")
    begin_session(result.raw_session_id)
    flash(f"You are now working as {Role(result.account.role).label.lower()}.", "success")
    return _dashboard()


# -- links from e-mails ------------------------------------------------------------------------

@blueprint.route("/verify-email/<token>", methods=["GET", "POST"])
@auth_rate_limited
def verify_email(token: str) -> ResponseReturnValue:
    # A GET only shows a button: mail scanners that prefetch links must not use them up.
    form = ActionForm()
    if not form.validate_on_submit():
        tokens.usable(uow().session, token, TokenPurpose.VERIFY_EMAIL,
                      "This confirmation link is not valid any more. Log in to get a new one.")
        return render_template("auth/verify_email.html", form=form)
    identity = credentials.verify_email(uow(), token)
    begin_session(_logged_in(identity))
    flash("Thank you, your e-mail address is confirmed.", "success")
    return _dashboard()


@blueprint.route("/forgot-password", methods=["GET", "POST"])
@auth_rate_limited
def forgot_password() -> ResponseReturnValue:
    if request.method == "GET" and not request.args:
        return render_blank_form("auth/forgot_password.html", EmailForm)
    form = EmailForm()
    if form.validate_on_submit():
        with errors_shown_on(form):
            credentials.request_password_reset(uow(), form.email.data or "")
            return _check_email("reset")
    return render_form("auth/forgot_password.html", form)


@blueprint.route("/reset-password/<token>", methods=["GET", "POST"])
@auth_rate_limited
def reset_password(token: str) -> ResponseReturnValue:
    return _new_password(token, TokenPurpose.RESET_PASSWORD)


@blueprint.route("/set-password/<token>", methods=["GET", "POST"])
@auth_rate_limited
def set_password(token: str) -> ResponseReturnValue:
    return _new_password(token, TokenPurpose.SET_PASSWORD)


def _new_password(token: str, purpose: TokenPurpose) -> ResponseReturnValue:
    tokens.usable(uow().session, token, purpose, "This link is not valid any more. Ask for a "
                  "new one.")
    form = NewPasswordForm()
    if form.validate_on_submit():
        with errors_shown_on(form):
            identity = credentials.reset_password(uow(), token,
                                                  form.password.data or "", purpose)
            begin_session(_logged_in(identity))
            flash("Your new password is set, and every other session was logged out.",
                  "success")
            return _dashboard()
    return render_form("auth/new_password.html", form, purpose=str(purpose))
