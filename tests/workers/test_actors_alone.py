"""The worker side stands on its own: actors declared on a broker by the composition root's
`assemble`, run by an in-process worker, with no Flask app anywhere."""

from __future__ import annotations

from core.adapters.cache import MemoryCache
from core.adapters.mail import MemoryMailer
from core.adapters.notifications import LocalBus
from core.adapters.webhooks import MemoryWebhookSender
from core.mail.test_email import request_test_email
from core.services import Services
from tests.support.workers import EmbeddedWorker
from workers.wiring import assemble


def test_an_actor_runs_its_effect_without_a_web_app(settings, db):
    services = Services(settings=settings, db=db, cache=MemoryCache(), mailer=MemoryMailer(),
                        notifications=LocalBus(), webhooks=MemoryWebhookSender())
    side = assemble(settings, services)
    worker = EmbeddedWorker(side)
    try:
        with side.runtime.unit_of_work() as uow:
            event = request_test_email(uow, "someone@example.com")
            uow.commit()
        worker.drain()
    finally:
        worker.stop()
    [mail] = services.mailer.sent.values()
    assert mail.message_id.startswith(f"<{event.id}.send_test_email@")
    assert set(side.actors.by_name) >= {"send_test_email", "write_audit", "relay_outbox"}
