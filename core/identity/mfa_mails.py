"""E-mails a person wants about their second factor: one added, one removed, a recovery code
used. Handlers on the `email` queue, like core.identity.mails."""

from __future__ import annotations

import uuid

from core import localtime
from core.events.types import EventType
from core.identity import links
from core.identity.models import Identity
from core.identity.zones import time_zone_of
from core.mail.for_events import send_for_event
from core.pipeline.handlers import EMAIL_RETRY, HandlerContext, handler


def _identity(ctx: HandlerContext) -> Identity | None:
    subject = ctx.event.subject or ""
    if not subject.startswith("identity:"):
        return None
    return ctx.uow.session.get(Identity, uuid.UUID(subject.removeprefix("identity:")))


def _link(ctx: HandlerContext, path: str) -> str:
    return links.absolute(ctx.services.settings.public_url, path)


def _when(ctx: HandlerContext, identity_id: uuid.UUID) -> str:
    return localtime.long_date_time(ctx.event.occurred_at,
                                    time_zone_of(ctx.uow.session, identity_id))


@handler(name="send_mfa_enrolled_email", queue="email", retry=EMAIL_RETRY,
         events={EventType.MFA_ENROLLED})
def send_mfa_enrolled_email(ctx: HandlerContext) -> None:
    identity = _identity(ctx)
    if identity is None:
        return
    send_for_event(ctx, "mfa_enrolled", identity.email, when=_when(ctx, identity.id),
                   ip=ctx.event.ip, kind=ctx.event.payload.get("kind"),
                   name=ctx.event.payload.get("name"),
                   reset_link=_link(ctx, links.FORGOT_PASSWORD))


@handler(name="send_mfa_removed_email", queue="email", retry=EMAIL_RETRY,
         events={EventType.MFA_REMOVED})
def send_mfa_removed_email(ctx: HandlerContext) -> None:
    identity = _identity(ctx)
    if identity is None:
        return
    payload = ctx.event.payload
    send_for_event(ctx, "mfa_removed", identity.email, when=_when(ctx, identity.id),
                   ip=ctx.event.ip, kind=payload.get("kind"), name=payload.get("name"),
                   last=payload.get("last"), by_admin=payload.get("by") == "admin",
                   reset_link=_link(ctx, links.FORGOT_PASSWORD))


@handler(name="send_recovery_code_used_email", queue="email", retry=EMAIL_RETRY,
         events={EventType.RECOVERY_CODE_USED})
def send_recovery_code_used_email(ctx: HandlerContext) -> None:
    identity = _identity(ctx)
    if identity is None:
        return
    send_for_event(ctx, "recovery_code_used", identity.email, when=_when(ctx, identity.id),
                   ip=ctx.event.ip, left=ctx.event.payload.get("left"),
                   reset_link=_link(ctx, links.FORGOT_PASSWORD))
