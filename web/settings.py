"""Settings: your profile (and with it the time zone every page shows times in), your e-mail
address, and for a practice's therapists, the practice itself."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response

from core.identity import email_change, practice, profile, tokens
from core.identity.models import Account, Role, TokenPurpose
from core.onboarding.schemas import LANGUAGES, time_zones
from core.tenancy.guard import owned
from core.tenancy.models import Tenant
from web.authn import current, login_required, me, role_required
from web.context import settings, uow
from web.forms import (
    ActionForm,
    EmailChangeForm,
    PracticeSettingsForm,
    ProfileForm,
    errors_shown_on,
    form_status,
)
from web.mfa import fresh_second_factor_required
from web.security import auth_rate_limited

blueprint = Blueprint("settings", __name__)


def _profile_form() -> ProfileForm:
    current_profile = profile.profile_of(uow().session, me())
    return ProfileForm(display_name=current_profile.display_name,
                       **{k: current_profile.answers.get(k, "") for k in profile.ANSWERED})


def _practice_form(tenant: Tenant | None) -> PracticeSettingsForm | None:
    if tenant is None or me().role != Role.THERAPIST:
        return None
    return PracticeSettingsForm(name=tenant.name,
                                join_link_enabled=practice.join_link(tenant).enabled)


def _tenant() -> Tenant | None:
    tenant_id = me().tenant_uuid
    return uow().session.get(Tenant, tenant_id) if tenant_id else None


def _page(failed: FlaskForm | None = None, **forms: Any) -> tuple[str, int]:
    tenant = _tenant()
    shown = {"profile_form": forms.get("profile_form") or _profile_form(),
             "email_form": forms.get("email_form") or EmailChangeForm(formdata=None),
             "practice_form": forms.get("practice_form") or _practice_form(tenant)}
    join = practice.join_link(tenant) if tenant and me().role == Role.THERAPIST else None
    return render_template(
        "settings.html", **shown, tenant=tenant, join=join,
        join_url=settings().public_url + join.path(tenant.slug) if join and tenant else None,
        has_answers=profile.profile_of(uow().session, me()).has_answers,
        time_zones=time_zones(), languages=LANGUAGES, action_form=ActionForm(),
    ), form_status(failed) if failed is not None else 200


def _account() -> Account:
    return owned(uow().session, Account, me().account_uuid)


@blueprint.get("/settings")
@login_required
def settings_page() -> ResponseReturnValue:
    return _page()


@blueprint.post("/settings/profile")
@login_required
def update_profile() -> ResponseReturnValue:
    form = ProfileForm()
    if form.validate_on_submit():
        with errors_shown_on(form):
            profile.update_profile(uow(), me(),
                                   display_name=form.display_name.data or "",
                                   answers={k: getattr(form, k).data or ""
                                            for k in profile.ANSWERED})
            flash("Your profile is saved. Times are shown in your time zone.", "success")
            return redirect(url_for("settings.settings_page"))
    return _page(form, profile_form=form)


@blueprint.post("/settings/email")
@login_required
@fresh_second_factor_required
def change_email() -> ResponseReturnValue:
    form = EmailChangeForm()
    if form.validate_on_submit():
        with errors_shown_on(form):
            address = email_change.request_email_change(
                uow(), me(), new_email=form.new_email.data or "",
                password=form.password.data or "")
            flash(f"We sent a link to {address}. Open it to confirm the new address; until "
                  f"then you log in with {me().email}.", "info")
            return redirect(url_for("settings.settings_page"))
    return _page(form, email_form=form)


@blueprint.route("/settings/email/confirm/<token>", methods=["GET", "POST"])
@auth_rate_limited
def confirm_email(token: str) -> ResponseReturnValue:
    # A GET only shows a button: mail scanners that prefetch links must not use them up.
    form = ActionForm()
    if not form.validate_on_submit():
        found = tokens.usable(uow().session, token, TokenPurpose.CHANGE_EMAIL,
                              email_change.LINK_NOT_VALID)
        return render_template("settings_confirm_email.html", form=form,
                               new_email=found.new_email)
    identity = email_change.confirm_email_change(uow(), token)
    flash(f"Your e-mail address is now {identity.email}. We told your old address about the "
          "change.", "success")
    if current() is None:
        return redirect(url_for("auth.login"))
    return redirect(url_for("settings.settings_page"))


@blueprint.post("/settings/practice")
@role_required(Role.THERAPIST)
def update_practice() -> ResponseReturnValue:
    form = PracticeSettingsForm()
    if form.validate_on_submit():
        with errors_shown_on(form):
            practice.update_practice(uow(), _account(), me(),
                                     name=form.name.data or "",
                                     join_link_enabled=bool(form.join_link_enabled.data))
            flash("Your practice's settings are saved.", "success")
            return redirect(url_for("settings.settings_page", _anchor="practice"))
    return _page(form, practice_form=form)


@blueprint.post("/settings/practice/join-link")
@role_required(Role.THERAPIST)
def regenerate_join_link() -> Response:
    if ActionForm().validate_on_submit():
        practice.regenerate_join_link(uow(), _account())
        flash("Your practice has a new join link; the old one no longer works.", "success")
    return redirect(url_for("settings.settings_page", _anchor="practice"))
