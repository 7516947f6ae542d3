"""What a person types when they register or change a credential, checked field by field."""

from __future__ import annotations

from collections.abc import Callable

from core.errors import ValidationFailed
from core.identity.passwords import WeakPassword, check_strength
from core.mail.addresses import InvalidAddress, normalise_address


def email_address(raw: str, field: str = "email") -> str:
    try:
        return normalise_address(raw)
    except InvalidAddress as error:
        raise ValidationFailed({field: str(error)}) from None


def new_password(raw: str, email: str, field: str = "password") -> str:
    try:
        check_strength(raw or "", email=email)
    except WeakPassword as error:
        raise ValidationFailed({field: str(error)}) from None
    return raw


def all_fields(checks: dict[str, Callable[[], str]]) -> dict[str, str]:
    """Run every check; report all the fields that fail, not just the first."""
    values: dict[str, str] = {}
    errors: dict[str, str] = {}
    for field, check in checks.items():
        try:
            values[field] = check()
        except ValidationFailed as failed:
            errors.update(failed.errors)
    if errors:
        raise ValidationFailed(errors)
    return values
