"""Every actor. Each is a few lines that call one `core` function.

One actor per handler in `core.effects.HANDLERS` (on the handler's queue, with its retry policy),
plus the audit writer, the outbox relay and the scheduled jobs.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker

from core.audit import writer as audit_writer
from core.audit.security import with_final_count
from core.effects import HANDLERS
from core.events import outbox
from core.events.handlers import INTERNAL_RETRY, MINUTE_MS, Handler
from core.events.runner import ClaimHeld, GiveUp, run_batch, run_handler
from core.metrics import rollup as metrics_rollup
from core.onboarding import reminders as onboarding_reminders
from workers.runtime import current_message, current_uow, runtime

log = logging.getLogger(__name__)

# Actors bind to the global broker when declared; until `install_broker` swaps in the real one,
# make sure that is a harmless stub rather than Dramatiq's default RabbitMQ connection.
if dramatiq.broker.global_broker is None:
    dramatiq.set_broker(StubBroker())


def _handler_actor(handler: Handler) -> dramatiq.Actor[[str | list[str]], None]:
    def run(event_ids: str | list[str]) -> None:
        # One id (a message of its own) or a batch of them, as the publisher sends.
        ids = [event_ids] if isinstance(event_ids, str) else event_ids
        if len(ids) == 1:
            _run_alone(handler, uuid.UUID(ids[0]))
            return
        outcome = run_batch(current_uow(), runtime().services, handler,
                            [uuid.UUID(event_id) for event_id in ids], current_message().message_id)
        actor = HANDLER_ACTORS[handler.name]
        for event in outcome.alone:
            # A failed event waits as long as a failed message would before its first retry.
            actor.send_with_options(args=(str(event.event_id),),
                                    delay=actor.options["min_backoff"] if event.failed else None)

    run.__name__ = run.__qualname__ = handler.name
    policy = handler.retry
    return dramatiq.actor(
        run,
        actor_name=handler.name,
        queue_name=handler.queue,
        max_retries=policy.max_retries,
        min_backoff=policy.min_backoff_ms,
        max_backoff=policy.max_backoff_ms,
        time_limit=policy.time_limit_ms,
        throws=(GiveUp,),
    )


def _run_alone(handler: Handler, event_id: uuid.UUID) -> None:
    try:
        run_handler(current_uow(), runtime().services, handler, event_id,
                    current_message().message_id)
    except ClaimHeld as held:
        raise dramatiq.Retry(delay=held.retry_in_ms) from None
    except handler.gives_up_on as error:
        raise GiveUp(str(error)) from error


HANDLER_ACTORS: dict[str, dramatiq.Actor[[str | list[str]], None]] = {
    handler.name: _handler_actor(handler) for handler in HANDLERS
}


@dramatiq.actor(queue_name="audit", max_retries=INTERNAL_RETRY.max_retries,
                min_backoff=INTERNAL_RETRY.min_backoff_ms,
                max_backoff=INTERNAL_RETRY.max_backoff_ms, time_limit=5 * MINUTE_MS)
def write_audit() -> None:
    """Drain unaudited events into audit entries (batched; no arguments, nothing to go stale)."""
    audit_writer.write_pending(current_uow())


@dramatiq.actor(queue_name="audit", max_retries=INTERNAL_RETRY.max_retries,
                min_backoff=INTERNAL_RETRY.min_backoff_ms,
                max_backoff=INTERNAL_RETRY.max_backoff_ms)
def write_security_audit(entry: dict[str, Any]) -> None:
    """A security entry with no transaction of its own (failed login, denied access …); one
    that counts repeats arrives at the end of its window and takes the final count."""
    audit_writer.write_direct(current_uow(), [with_final_count(entry, runtime().services.cache)])


@dramatiq.actor(queue_name="maintenance", max_retries=0, time_limit=2 * MINUTE_MS)
def relay_outbox() -> None:
    """Publish events the fast path missed. Scheduled every few seconds; retrying is pointless
    because the next run comes soon anyway."""
    from workers.publisher import BrokerPublisher

    publisher = BrokerPublisher(runtime().settings)
    total = 0
    while (sent := outbox.relay(current_uow(), publisher)) > 0:
        total += sent
        if sent < outbox.RELAY_BATCH:
            break
    if total:
        log.info("relayed %d event(s) the fast path had missed", total)


@dramatiq.actor(queue_name="maintenance", max_retries=0, time_limit=5 * MINUTE_MS)
def send_onboarding_reminders() -> None:
    """Scheduled hourly: record a reminder for each account whose onboarding stalled."""
    while onboarding_reminders.record_due_reminders(current_uow()) >= onboarding_reminders.BATCH:
        pass


@dramatiq.actor(queue_name="maintenance", max_retries=0, time_limit=10 * MINUTE_MS)
def rollup_metrics() -> None:
    """Scheduled every 5 minutes: roll up what changed since the watermark. A failed run leaves
    the watermark where it was, and the next tick does its work: no retries to pile up."""
    metrics_rollup.run(current_uow())


ALL_ACTORS: list[dramatiq.Actor[Any, Any]] = [
    *HANDLER_ACTORS.values(),
    write_audit,
    write_security_audit,
    relay_outbox,
    send_onboarding_reminders,
    rollup_metrics,
]
