"""E-mails about identities, each a handler on the `email` queue.

Links carry tokens created here, in the worker, so the raw token exists only in the e-mail.
Every handler re-reads the state it needs and returns early when there is nothing to send.
"""

from __future__ import annotations

import uuid
from typing import Any

from core import localtime
from core.events.types import EventType
from core.identity import links, tokens
from core.identity.models import Identity, Invitation, TokenPurpose
from core.identity.zones import time_zone_of
from core.mail.for_events import send_for_event
from core.pipeline.handlers import EMAIL_RETRY, HandlerContext, handler
from core.tenancy.models import Tenant
from core.tenancy.service import by_slug


def _identity(ctx: HandlerContext) -> Identity | None:
    subject = ctx.event.subject or ""
    if not subject.startswith("identity:"):
        return None
    return ctx.uow.session.get(Identity, uuid.UUID(subject.removeprefix("identity:")))


def personal_value(payload: dict[str, Any], key: str) -> Any:
    """A personal value of an event's payload: under "personal" (kept out of the audit chain,
    so erasure can remove it), or at the top level in events recorded before that."""
    personal = payload.get("personal")
    found = personal.get(key) if isinstance(personal, dict) else None
    return found if found is not None else payload.get(key)


def _token(ctx: HandlerContext, identity_id: uuid.UUID, purpose: TokenPurpose,
           event_id: uuid.UUID, *, new_email: str | None = None) -> str:
    return tokens.for_event(ctx.uow.session, ctx.services.settings.link_token_key, identity_id,
                            purpose, event_id, new_email=new_email)


def _link(ctx: HandlerContext, path: str, **values: str) -> str:
    return links.absolute(ctx.services.settings.public_url, path, **values)


@handler(name="send_verification_email", queue="email", retry=EMAIL_RETRY,
         events={EventType.USER_CREATED, EventType.EMAIL_VERIFICATION_REQUESTED})
def send_verification_email(ctx: HandlerContext) -> None:
    identity = _identity(ctx)
    if identity is None or identity.email_verified_at is not None:
        return  # invited people proved their address by following the invitation
    raw = _token(ctx, identity.id, TokenPurpose.VERIFY_EMAIL, ctx.event.id)
    send_for_event(ctx, "verify_email", identity.email,
          link=_link(ctx, links.VERIFY_EMAIL, token=raw))


@handler(name="send_signup_exists_email", queue="email", retry=EMAIL_RETRY,
         events={EventType.SIGNUP_EMAIL_EXISTS})
def send_signup_exists_email(ctx: HandlerContext) -> None:
    identity = _identity(ctx)
    if identity is None:
        return
    slug = ctx.event.payload.get("tenant")
    tenant = by_slug(ctx.uow.session, slug) if slug else None
    send_for_event(ctx, "signup_exists", identity.email,
          role=ctx.event.payload.get("role", "client"),
          practice=tenant.name if tenant else None,
          login_link=_link(ctx, links.LOGIN),
          join_link=_link(ctx, links.JOIN, slug=slug) if slug else _link(ctx, links.SIGNUP),
          reset_link=_link(ctx, links.FORGOT_PASSWORD))


@handler(name="send_password_reset_email", queue="email", retry=EMAIL_RETRY,
         events={EventType.PASSWORD_RESET_REQUESTED})
def send_password_reset_email(ctx: HandlerContext) -> None:
    identity = _identity(ctx)
    if identity is None:
        return
    raw = _token(ctx, identity.id, TokenPurpose.RESET_PASSWORD, ctx.event.id)
    send_for_event(ctx, "password_reset", identity.email,
          link=_link(ctx, links.RESET_PASSWORD, token=raw))


@handler(name="send_password_changed_email", queue="email", retry=EMAIL_RETRY,
         events={EventType.PASSWORD_CHANGED})
def send_password_changed_email(ctx: HandlerContext) -> None:
    identity = _identity(ctx)
    if identity is None:
        return
    send_for_event(ctx, "password_changed", identity.email,
          when=localtime.long_date_time(ctx.event.occurred_at,
                                        time_zone_of(ctx.uow.session, identity.id)),
          ip=ctx.event.ip,
          reset_link=_link(ctx, links.FORGOT_PASSWORD))


@handler(name="send_lockout_email", queue="email", retry=EMAIL_RETRY,
         events={EventType.ACCOUNT_LOCKED})
def send_lockout_email(ctx: HandlerContext) -> None:
    identity = _identity(ctx)
    if identity is None:
        return
    send_for_event(ctx, "account_locked", identity.email,
          minutes=ctx.event.payload.get("minutes"), ip=ctx.event.ip,
          reset_link=_link(ctx, links.FORGOT_PASSWORD))


@handler(name="send_invitation_email", queue="email", retry=EMAIL_RETRY,
         events={EventType.INVITATION_SENT})
def send_invitation_email(ctx: HandlerContext) -> None:
    invitation = ctx.uow.session.get(Invitation,
                                     uuid.UUID(ctx.event.payload["invitation_id"]))
    if invitation is None or invitation.accepted_at or invitation.revoked_at:
        return
    tenant = ctx.uow.session.get(Tenant, invitation.tenant_id)
    # A resend (another event) gets a new link that replaces the old one; a retry of this
    # e-mail, the same link (see tokens.for_event).
    raw = tokens.derived(ctx.services.settings.link_token_key, "invitation", ctx.event.id)
    invitation.token_hash = tokens.digest(raw)
    # The invitee has no time zone yet: the practice's is the best guess.
    zone = (tenant.settings or {}).get("time_zone") if tenant else None
    send_for_event(ctx, "invitation", invitation.email,
          practice=tenant.name if tenant else "a practice",
          link=_link(ctx, links.INVITATION, token=raw),
          expires=localtime.long_date_time(invitation.expires_at, zone))


@handler(name="send_email_change_link", queue="email", retry=EMAIL_RETRY,
         events={EventType.EMAIL_CHANGE_REQUESTED})
def send_email_change_link(ctx: HandlerContext) -> None:
    identity = _identity(ctx)
    new_email = personal_value(ctx.event.payload, "new_email")
    if identity is None or not new_email or identity.email == new_email:
        return
    raw = _token(ctx, identity.id, TokenPurpose.CHANGE_EMAIL, ctx.event.id, new_email=new_email)
    send_for_event(ctx, "confirm_new_email", new_email, old_email=identity.email,
                   link=_link(ctx, links.CONFIRM_NEW_EMAIL, token=raw))


@handler(name="send_email_changed_notice", queue="email", retry=EMAIL_RETRY,
         events={EventType.EMAIL_CHANGED})
def send_email_changed_notice(ctx: HandlerContext) -> None:
    """To the address the login had: the owner learns of a change they did not make."""
    identity = _identity(ctx)
    old_email = personal_value(ctx.event.payload, "old_email")
    if identity is None or not old_email:
        return
    send_for_event(ctx, "email_changed", old_email, new_email=identity.email,
                   when=localtime.long_date_time(ctx.event.occurred_at,
                                                 time_zone_of(ctx.uow.session, identity.id)),
                   reset_link=_link(ctx, links.FORGOT_PASSWORD))


@handler(name="send_set_password_email", queue="email", retry=EMAIL_RETRY,
         events={EventType.ADMIN_CREATED})
def send_set_password_email(ctx: HandlerContext) -> None:
    identity = _identity(ctx)
    if identity is None or not ctx.event.payload.get("send_link"):
        return
    raw = _token(ctx, identity.id, TokenPurpose.SET_PASSWORD, ctx.event.id)
    send_for_event(ctx, "set_password", identity.email,
          link=_link(ctx, links.SET_PASSWORD, token=raw))
