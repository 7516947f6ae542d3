"""Sending an e-mail as the effect of an event, from a handler."""

from __future__ import annotations

import logging
from typing import Any

from core.mail import allowance
from core.mail.render import compose, message_id_for
from core.pipeline.handlers import HandlerContext

log = logging.getLogger(__name__)


def send_for_event(ctx: HandlerContext, template: str, to: str, **context: Any) -> None:
    """Render `template` and send it, unless the recipient has had their allowance of such
    e-mails (then it is counted as suppressed instead). The Message-ID comes from
    (event, handler), so a retry after an unknown SMTP outcome carries the same one.

    What the e-mail depends on (a token its link carries, its own record) is committed before it
    goes; afterwards only the run's "done" marker is left to write (see
    HandlerContext.commit_before_effect)."""
    decision = allowance.decide(ctx.uow.session, to, template, ctx.event.id)
    if decision.reason:
        log.warning("%s e-mail for event %s suppressed: %s", template, ctx.event.id,
                    decision.reason)
    if not decision.send:
        return
    settings = ctx.services.settings
    mail = compose(template, to=to, sender=settings.mail_from,
                   message_id=message_id_for(ctx.event.id, ctx.handler, settings.mail_from),
                   context={"public_url": settings.public_url, **context})
    ctx.commit_before_effect()
    ctx.services.mailer.send(mail)
