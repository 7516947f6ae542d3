"""The addresses e-mails link to. The web tier serves exactly these paths (a test checks)."""

from __future__ import annotations

VERIFY_EMAIL = "/verify-email/{token}"
RESET_PASSWORD = "/reset-password/{token}"
SET_PASSWORD = "/set-password/{token}"
CONFIRM_NEW_EMAIL = "/settings/email/confirm/{token}"
SETTINGS = "/settings"
INVITATION = "/invite/{token}"
LOGIN = "/login"
JOIN = "/join/{slug}"
SIGNUP = "/signup"
FORGOT_PASSWORD = "/forgot-password"
SESSIONS = "/account/sessions"
DASHBOARD = "/dashboard"
ONBOARDING = "/onboarding"
INBOX = "/inbox"


def absolute(public_url: str, path: str, **values: str) -> str:
    return public_url.rstrip("/") + path.format(**values)
