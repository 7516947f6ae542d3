"""Form definitions: fields, labels and CSRF. The rules themselves live in core."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, PasswordField, StringField
from wtforms.validators import AnyOf, InputRequired, Length

from core.errors import ValidationFailed
from core.identity.passwords import MAX_LENGTH as MAX_PASSWORD

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


class ActionForm(FlaskForm):
    """A button that changes state: only the CSRF token."""


def apply_errors(form: FlaskForm, failed: ValidationFailed) -> None:
    for field, message in failed.errors.items():
        target = getattr(form, field, None)
        if target is not None and hasattr(target, "errors"):
            target.errors = [*list(target.errors), message]
        else:
            form.form_errors.append(message)
