"""Form definitions: fields, labels and CSRF. The rules themselves live in core."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import flash, g, render_template
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, HiddenField, IntegerField, PasswordField, StringField
from wtforms.validators import AnyOf, InputRequired, Length, NumberRange, Optional

from core.errors import DomainError, Forbidden, RateLimited, Unauthenticated, ValidationFailed
from core.identity.passwords import MAX_LENGTH as MAX_PASSWORD
from web.errors import status_for

NAME = [Length(max=500)]
EMAIL = [InputRequired("Enter your e-mail address."), Length(max=500)]
PASSWORD = [InputRequired("Enter a password."), Length(max=MAX_PASSWORD * 4)]


class SignupForm(FlaskForm):
    practice_name = StringField("Practice name", NAME)
    display_name = StringField("Your name", NAME)
    email = EmailField("E-mail address", EMAIL)
    password = PasswordField("Password", PASSWORD)


class JoinForm(FlaskForm):
    display_name = StringField("Your name", NAME)
    email = EmailField("E-mail address", EMAIL)
    password = PasswordField("Password", PASSWORD)


class NameForm(FlaskForm):
    """A logged-in person joining as a client, or accepting an invitation with their login."""

    display_name = StringField("Your name as the practice will see it", NAME)


class PracticeForm(FlaskForm):
    practice_name = StringField("Practice name", NAME)
    display_name = StringField("Your name as clients will see it", NAME)


class AcceptInvitationForm(FlaskForm):
    display_name = StringField("Your name", NAME)
    password = PasswordField("Choose a password", PASSWORD)


class LoginForm(FlaskForm):
    email = EmailField("E-mail address", EMAIL)
    password = PasswordField("Password", [InputRequired("Enter your password."),
                                          Length(max=MAX_PASSWORD * 4)])
    next = HiddenField()


class EmailForm(FlaskForm):
    email = EmailField("E-mail address", EMAIL)


class NewPasswordForm(FlaskForm):
    password = PasswordField("New password", PASSWORD)


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField("Current password", [InputRequired("Enter your current "
                                                                        "password.")])
    new_password = PasswordField("New password", PASSWORD)


class SwitchRoleForm(FlaskForm):
    role = StringField("Switch to", [AnyOf(["client", "therapist", "admin"])])


class PracticeLimitForm(FlaskForm):
    requests_per_minute = IntegerField(
        "Requests per minute for the whole practice",
        [Optional(), NumberRange(min=1, message="Enter a whole number of at least 1.")])


class ActionForm(FlaskForm):
    """A button that changes state: only the CSRF token."""


class ProfileForm(FlaskForm):
    display_name = StringField("Your name as others here see it", NAME)
    full_name = StringField("Full name", NAME)
    phone = StringField("Phone number", NAME)
    time_zone = StringField("Time zone", NAME)
    preferred_language = StringField("Preferred language", NAME)


class EmailChangeForm(FlaskForm):
    new_email = EmailField("New e-mail address", EMAIL)
    password = PasswordField("Your password", [InputRequired("Enter your password."),
                                               Length(max=MAX_PASSWORD * 4)])


class PracticeSettingsForm(FlaskForm):
    name = StringField("Practice name", NAME)
    join_link_enabled = BooleanField("Anyone with the join link can join as a client")


# What a rule may say about a form: shown on the form the person sent, with the typed values.
SHOWN_ON_FORMS = (ValidationFailed, Unauthenticated, Forbidden)


@contextmanager
def errors_shown_on(form: FlaskForm) -> Iterator[None]:
    """Run the service call a form asks for; if a rule refuses it, the refusal lands on the
    form (per field where it names one) and the view goes on to render the form again."""
    try:
        yield
    except SHOWN_ON_FORMS as refused:
        _apply(form, refused)
        g.form_refusal = refused


@contextmanager
def refusal_flashed(*also: type[DomainError]) -> Iterator[None]:
    """For a button (no form to show it on): a rule's refusal (and any of `also`) becomes a
    flashed message on the page the view redirects to, and nothing the call did is kept."""
    from web.context import uow

    refusals: tuple[type[DomainError], ...] = (*SHOWN_ON_FORMS, RateLimited, *also)
    try:
        yield
    except refusals as refused:
        uow().rollback()
        message = (" ".join(refused.errors.values()) if isinstance(refused, ValidationFailed)
                   else str(refused))
        flash(message, "warning")


def render_form(template: str, form: FlaskForm, **context: Any) -> tuple[str, int]:
    """The form's page, with the status `form_status` gives."""
    return render_template(template, form=form, **context), form_status(form)


def form_status(form: FlaskForm) -> int:
    """200 for a fresh form; the status of what refused it (422 for invalid fields)."""
    refusal: DomainError | None = g.get("form_refusal")
    if refusal is not None:
        return status_for(refusal)
    return 422 if form.errors else 200


def _apply(form: FlaskForm, refused: DomainError) -> None:
    errors = refused.errors if isinstance(refused, ValidationFailed) else {"": str(refused)}
    for field, message in errors.items():
        target = getattr(form, field, None) if field else None
        if target is not None and hasattr(target, "errors"):
            target.errors = [*list(target.errors), message]
        else:
            form.form_errors.append(message)


# -- a second factor (web.mfa) ------------------------------------------------------------------

class SecondFactorForm(FlaskForm):
    code = StringField("Code", [InputRequired("Enter the code."), Length(max=64)])
    next = HiddenField()


class FactorNameForm(FlaskForm):
    name = StringField("Name", [InputRequired("Give it a name."), Length(max=500)])


class SecondFactorPolicyForm(FlaskForm):
    policy = StringField("Who needs a second factor",
                         [AnyOf(["none", "therapists", "everyone"],
                                message="Choose who needs a second factor.")])


class ResetFactorsForm(FlaskForm):
    email = EmailField("The person's e-mail address", EMAIL)
