"""Sending an e-mail as the effect of an event, from a handler."""

from __future__ import annotations

from typing import Any

from core.events.handlers import HandlerContext
from core.mail.render import compose, message_id_for


def send_for_event(ctx: HandlerContext, template: str, to: str, **context: Any) -> None:
    """Render `template` and send it. The Message-ID comes from (event, handler), so a retry
    after an unknown SMTP outcome carries the same one."""
    settings = ctx.services.settings
    mail = compose(template, to=to, sender=settings.mail_from,
                      message_id=message_id_for(ctx.event.id, ctx.handler, settings.mail_from),
                      context={"public_url": settings.public_url, **context})
    ctx.services.mailer.send(mail)
