"""Changing the e-mail address of a login: the new address proves itself by a link sent to it;
the old address is told once the change is made (someone who took over a login cannot quietly
move it away from its owner)."""

from __future__ import annotations

from core import clock
from core.caching import PRACTICE_HOMES, invalidate_after_commit
from core.errors import Conflict, NotFound, ValidationFailed
from core.events.types import EventType
from core.identity import sessions
from core.identity.directory import accounts_of, identity_by_email
from core.identity.models import Identity, TokenPurpose
from core.identity.passwords import verify_password
from core.identity.tokens import redeem
from core.identity.validation import email_address
from core.uow import UnitOfWork

LINK_NOT_VALID = ("This link is not valid any more. Ask for a new one on your settings page; "
                  "your address has not changed.")


def request_email_change(uow: UnitOfWork, view: sessions.SessionView, *, new_email: str,
                         password: str) -> str:
    """Send a confirmation link to `new_email`; nothing changes until it is followed."""
    identity = uow.session.get(Identity, view.identity_uuid)
    if identity is None:
        raise NotFound("No such identity.")
    errors: dict[str, str] = {}
    address = ""
    try:
        address = email_address(new_email, field="new_email")
    except ValidationFailed as invalid:
        errors.update(invalid.errors)
    if not verify_password(identity.password_hash, password or ""):
        errors["password"] = "That is not your current password."  # noqa: S105 - a message
    if not errors and address == identity.email:
        errors["new_email"] = "That is your address already."
    elif not errors and identity_by_email(uow.session, address) is not None:
        errors["new_email"] = "Another login uses that address. Choose a different one."
    if errors:
        raise ValidationFailed(errors)
    uow.record(EventType.EMAIL_CHANGE_REQUESTED, tenant_id=view.tenant_uuid,
               actor_account_id=view.account_uuid, subject=f"identity:{identity.id}",
               payload={"personal": {"new_email": address}})
    return address


def confirm_email_change(uow: UnitOfWork, raw_token: str) -> Identity:
    token = redeem(uow.session, raw_token, TokenPurpose.CHANGE_EMAIL)
    identity = uow.session.get(Identity, token.identity_id) if token else None
    if token is None or identity is None or not token.new_email:
        raise NotFound(LINK_NOT_VALID)
    if identity_by_email(uow.session, token.new_email) is not None:
        raise Conflict("Another login started using that address meanwhile; your address has "
                       "not changed.")
    old = identity.email
    identity.email = token.new_email
    identity.email_verified_at = clock.now()
    # Their practices' dashboards list the address (Identity.cached_under covers the rest).
    invalidate_after_commit(uow.session, *(PRACTICE_HOMES.key(account.tenant_id)
                                            for account in accounts_of(uow.session, identity.id)
                                            if account.tenant_id is not None))
    uow.record(EventType.EMAIL_CHANGED, subject=f"identity:{identity.id}",
               payload={"personal": {"old_email": old, "new_email": identity.email}})
    return identity
