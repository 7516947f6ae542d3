"""`flask mail send-test ADDRESS`: lets an operator check outgoing mail end to end."""

from __future__ import annotations

from core import clock
from core.events.models import Event
from core.events.types import EventType
from core.mail.addresses import normalise_address
from core.mail.for_events import send_for_event
from core.pipeline.handlers import EMAIL_RETRY, HandlerContext, handler
from core.uow import UnitOfWork


def request_test_email(uow: UnitOfWork, to: str) -> Event:
    return uow.record(EventType.TEST_EMAIL_REQUESTED, subject="mail:test",
                      payload={"to": normalise_address(to)})


@handler(name="send_test_email", queue="email", events={EventType.TEST_EMAIL_REQUESTED},
         retry=EMAIL_RETRY)
def send_test_email(ctx: HandlerContext) -> None:
    send_for_event(ctx, "test_email", ctx.event.payload["to"],
                   sent_at=clock.now().strftime("%Y-%m-%d %H:%M UTC"))
