"""A health incident opened or resolved: every platform admin gets one live notification and one
e-mail, through the pipeline (each handler idempotent per event: a redelivery sends nothing new).
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from core.events.types import EventType
from core.identity.models import Account, Identity, Role
from core.mail import allowance
from core.mail.render import compose, message_id_for
from core.notifications.service import notify
from core.pipeline.handlers import EMAIL_RETRY, HandlerContext, handler

HEALTH_ALERT = "health_incident"
EVENTS = {EventType.HEALTH_INCIDENT_OPENED, EventType.HEALTH_INCIDENT_RESOLVED}
PART_NAMES = {"dead_letters": "Dead letters", "audit_sink": "Audit sink"}


def _words(ctx: HandlerContext) -> tuple[str, str]:
    payload = ctx.event.payload
    part = PART_NAMES.get(payload.get("part", ""), str(payload.get("part", "?")).capitalize())
    if ctx.event.type == EventType.HEALTH_INCIDENT_OPENED:
        return f"{part} is failing", str(payload.get("detail") or "")
    return f"{part} has recovered", f"Failing since {payload.get('opened_at', '?')} (UTC)."


def _admins(ctx: HandlerContext) -> list[tuple[uuid.UUID, str]]:
    return [(row.id, row.email) for row in ctx.uow.session.execute(
        sa.select(Account.id, Identity.email).join(Identity, Identity.id == Account.identity_id)
        .where(Account.role == Role.ADMIN).order_by(Account.id))]


@handler(name="notify_admins_of_health", queue="notifications", events=EVENTS)
def notify_admins_of_health(ctx: HandlerContext) -> None:
    title, body = _words(ctx)
    for account_id, _email in _admins(ctx):
        notify(ctx.uow, ctx.services.notifications, account_id=account_id, tenant_id=None,
               kind=HEALTH_ALERT, title=title, body=body[:2000], link="/admin/health",
               source_event_id=uuid.uuid5(ctx.event.id, str(account_id)))


@handler(name="email_admins_of_health", queue="email", retry=EMAIL_RETRY, events=EVENTS)
def email_admins_of_health(ctx: HandlerContext) -> None:
    title, body = _words(ctx)
    settings, session = ctx.services.settings, ctx.uow.session
    for account_id, email in _admins(ctx):
        decision = allowance.decide(session, email, HEALTH_ALERT, ctx.event.id)
        # Recorded with this run's "done": an earlier decision means this admin was dealt with.
        if decision.earlier or not decision.send:
            continue
        # A Message-ID per admin (the same on a retry): each admin's copy is its own message.
        mail = compose(HEALTH_ALERT, to=email, sender=settings.mail_from,
                       message_id=message_id_for(uuid.uuid5(ctx.event.id, str(account_id)),
                                                 ctx.handler, settings.mail_from),
                       context={"public_url": settings.public_url, "title": title,
                                "body": body, "link": f"{settings.public_url}/admin/health"})
        ctx.services.mailer.send(mail)
