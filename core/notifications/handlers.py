"""Notifications that handlers raise, shown live in the browser of whoever they are for."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from core.events.types import EventType
from core.identity.models import Account, Invitation, Role
from core.notifications.service import notify
from core.pipeline.handlers import HandlerContext, handler

CLIENT_JOINED = "client_joined"
RENEWAL_REQUESTED = "invitation_renewal_requested"


def _joined_as_client(ctx: HandlerContext) -> bool:
    """Invitation accepted, or a client joined through the practice's join link (an accepted
    invitation also records USER_CREATED/ACCOUNT_ADDED; those are the same story)."""
    event = ctx.event
    if event.type == EventType.INVITATION_ACCEPTED:
        return True
    return event.payload.get("role") == Role.CLIENT and event.payload.get("via") == "join"


@handler(name="notify_therapists_of_new_client", queue="notifications",
         events={EventType.USER_CREATED, EventType.ACCOUNT_ADDED, EventType.INVITATION_ACCEPTED})
def notify_therapists_of_new_client(ctx: HandlerContext) -> None:
    event = ctx.event
    if event.tenant_id is None or not _joined_as_client(ctx):
        return
    client = ctx.uow.session.get(Account, event.actor_account_id) if event.actor_account_id \
        else None
    if client is None:
        return
    therapists = ctx.uow.session.execute(
        sa.select(Account).where(Account.tenant_id == event.tenant_id,
                                 Account.role == Role.THERAPIST)
    ).scalars().all()
    for therapist in therapists:
        notify(ctx.uow, ctx.services.notifications, account_id=therapist.id,
               tenant_id=event.tenant_id, kind=CLIENT_JOINED,
               title=f"New client: {client.display_name}",
               body="They joined your practice through your invitation."
               if event.type == EventType.INVITATION_ACCEPTED
               else "They joined your practice.",
               link=f"/therapist/clients/{client.id}",
               source_event_id=_source(event.id, therapist.id))


def _source(event_id: uuid.UUID, account_id: uuid.UUID) -> uuid.UUID:
    # One notification per (event, recipient), stable across redeliveries.
    return uuid.uuid5(event_id, str(account_id))


@handler(name="notify_inviter_of_renewal_request", queue="notifications",
         events={EventType.INVITATION_RENEWAL_REQUESTED})
def notify_inviter_of_renewal_request(ctx: HandlerContext) -> None:
    """Someone holding an expired invitation asked for a new one: the therapist who sent it."""
    event = ctx.event
    invitation = ctx.uow.session.get(Invitation, uuid.UUID(event.payload["invitation_id"]))
    if invitation is None or event.actor_account_id is None:
        return
    notify(ctx.uow, ctx.services.notifications, account_id=event.actor_account_id,
           tenant_id=event.tenant_id, kind=RENEWAL_REQUESTED,
           title=f"{invitation.email} asks for a new invitation",
           body="Their invitation expired before they used it. Resend it from your dashboard.",
           link="/therapist#invitations", source_event_id=event.id)
