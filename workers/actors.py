"""Every actor, declared on one broker for one runtime. Each is a few lines that call `core`.

One actor per handler in `core.effects.HANDLERS` (on the handler's queue, with its retry policy),
plus the audit writers, the outbox relay and the scheduled jobs. Nothing is declared at import:
`declare_actors` binds them to the broker and runtime the process's composition root built.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dramatiq
from dramatiq.broker import Broker

from core.audit import checkpoints as audit_checkpoints
from core.audit import integrity as audit_integrity
from core.audit import retention as audit_retention
from core.audit import sink as audit_sink
from core.audit import writer as audit_writer
from core.audit.security import with_final_count
from core.effects import HANDLERS
from core.events import outbox
from core.events.outbox import EventPublisher
from core.health import HealthChecks
from core.metrics import rollup as metrics_rollup
from core.monitoring import history as health_history
from core.monitoring.probes import CRITICAL, Probes
from core.onboarding import reminders as onboarding_reminders
from core.pipeline.handlers import INTERNAL_RETRY, MINUTE_MS, WEBHOOK_RETRY, Handler
from core.pipeline.runner import ClaimHeld, GiveUp, run_batch, run_handler
from core.privacy import erasure as privacy_erasure
from workers.broker import ping_broker, queue_depths
from workers.middleware import HEARTBEAT_GROUP
from workers.runtime import Runtime

log = logging.getLogger(__name__)

ActorFn = dramatiq.Actor[..., None]


@dataclass
class Actors:
    """The process's actors, by what they do; `by_name` for the scheduler and replays."""

    handlers: dict[str, ActorFn]
    write_audit: ActorFn
    write_security_audit: ActorFn
    relay_outbox: ActorFn
    send_onboarding_reminders: ActorFn
    sign_audit_checkpoint: ActorFn
    verify_audit_log: ActorFn
    deliver_audit_to_sink: ActorFn
    apply_audit_retention: ActorFn
    rollup_metrics: ActorFn
    recount_metrics: ActorFn
    record_health: ActorFn
    run_privacy_jobs: ActorFn

    @property
    def by_name(self) -> dict[str, ActorFn]:
        return {**self.handlers, **{actor.actor_name: actor for actor in (
            self.write_audit, self.write_security_audit, self.relay_outbox,
            self.send_onboarding_reminders, self.sign_audit_checkpoint,
            self.verify_audit_log, self.deliver_audit_to_sink, self.apply_audit_retention,
            self.rollup_metrics, self.recount_metrics, self.record_health,
            self.run_privacy_jobs)}}


def declare_actors(broker: Broker, runtime: Runtime) -> Actors:
    handlers: dict[str, ActorFn] = {}
    for handler in HANDLERS:
        handlers[handler.name] = handler_actor(broker, runtime, handler, handlers)
    internal = {"max_retries": INTERNAL_RETRY.max_retries,
                "min_backoff": INTERNAL_RETRY.min_backoff_ms,
                "max_backoff": INTERNAL_RETRY.max_backoff_ms}

    def nudge_sink() -> None:
        if runtime.services.audit_sink is not None:
            actors.deliver_audit_to_sink.send()

    def write_audit() -> None:
        """Drain unaudited events into audit entries (batched; no arguments to go stale)."""
        if audit_writer.write_pending(runtime.current_uow()):
            nudge_sink()

    def write_security_audit(entry: dict[str, Any]) -> None:
        """A security entry with no transaction of its own (denied access, rate limit …); one
        that counts repeats arrives at the end of its window and takes the final count."""
        audit_writer.queue_direct(runtime.current_uow(),
                                  [with_final_count(entry, runtime.services.cache)])
        actors.write_audit.send()

    def relay_outbox() -> None:
        """Publish events the fast path missed. Scheduled every few seconds; a retry would be
        pointless, the next run comes soon anyway."""
        total = 0
        publisher: EventPublisher = runtime.publisher
        while (sent := outbox.relay(runtime.current_uow(), publisher)) > 0:
            total += sent
            if sent < outbox.RELAY_BATCH:
                break
        if total:
            log.info("relayed %d event(s) the fast path had missed", total)

    def send_onboarding_reminders() -> None:
        """Scheduled hourly: record a reminder for each account whose onboarding stalled."""
        while onboarding_reminders.record_due_reminders(
                runtime.current_uow()) >= onboarding_reminders.BATCH:
            pass

    def sign_audit_checkpoint() -> None:
        """Scheduled hourly: sign the chains' heads (the sink receives the checkpoint)."""
        if audit_checkpoints.sign_heads(runtime.current_uow(), runtime.settings.audit_key):
            nudge_sink()

    def deliver_audit_to_sink() -> None:
        """Send the external sink every entry and checkpoint it has not had, in order per
        chain. Nudged after each audit write; the sweep comes every minute. A failure retries
        with backoff (as webhooks do), then waits in the dead letters."""
        sink = runtime.services.audit_sink
        if sink is not None:
            audit_sink.deliver_pending(runtime.current_uow(), sink)

    def verify_audit_log() -> None:
        """Scheduled daily: verify every chain; a failure alerts the platform admins."""
        uow = runtime.current_uow()
        audit_integrity.verify_and_record(uow, runtime.settings.audit_key)
        uow.commit()

    def apply_audit_retention() -> None:
        """Scheduled daily: keep monthly partitions ahead; archive, then drop, the months past
        AUDIT_RETENTION_MONTHS; remove killed writers' partial files."""
        audit_retention.apply(runtime.current_uow(), runtime.services)

    def rollup_metrics() -> None:
        """Scheduled every few minutes: roll up what changed since the watermark. A failed run
        leaves the watermark where it was and the next tick does its work: no retries."""
        metrics_rollup.run(runtime.current_uow())

    def recount_metrics() -> None:
        """Scheduled daily: a full rollup, every level counted from the tables. Ticks move the
        levels by what was recorded happening; rows deleted (an erasure removes a person's
        accounts) leave nothing to move them by, so this puts the levels right again."""
        metrics_rollup.run(runtime.current_uow(), full=True)

    health_checks = HealthChecks()

    def record_health() -> None:
        """Scheduled every minute: run every health check from here, keep the results, open or
        close incidents (their alerts ride the pipeline). Missed minutes stay gaps: no retries."""
        probes = Probes(runtime.settings, runtime.services,
                        broker_status=lambda: broker_status(broker),
                        alive_workers=lambda: runtime.services.cache.alive(HEARTBEAT_GROUP))
        _status, results = health_checks.run(probes.table(), critical=set(CRITICAL),
                                             timeout=runtime.settings.health_timeout_seconds)
        health_history.record(runtime.current_uow(), results)
    def run_privacy_jobs() -> None:
        """Scheduled hourly: erasure reminders, erasures past their cooling-off period, and
        restricted records whose retention or hold has ended. Each erasure commits on its own;
        a failed run is taken up by the next."""
        privacy_erasure.run_due(runtime.current_uow(), runtime.services)

    actors = Actors(
        handlers=handlers,
        write_audit=_declare(broker, write_audit, "audit", time_limit=5 * MINUTE_MS, **internal),
        write_security_audit=_declare(broker, write_security_audit, "audit", **internal),
        relay_outbox=_declare(broker, relay_outbox, "maintenance", max_retries=0,
                              time_limit=2 * MINUTE_MS),
        send_onboarding_reminders=_declare(broker, send_onboarding_reminders, "maintenance",
                                           max_retries=0, time_limit=5 * MINUTE_MS),
        sign_audit_checkpoint=_declare(broker, sign_audit_checkpoint, "audit", **internal),
        verify_audit_log=_declare(broker, verify_audit_log, "maintenance", max_retries=3,
                                  time_limit=120 * MINUTE_MS),
        deliver_audit_to_sink=_declare(
            broker, deliver_audit_to_sink, "audit-sink", max_retries=WEBHOOK_RETRY.max_retries,
            min_backoff=WEBHOOK_RETRY.min_backoff_ms, max_backoff=WEBHOOK_RETRY.max_backoff_ms,
            time_limit=5 * MINUTE_MS),
        apply_audit_retention=_declare(broker, apply_audit_retention, "maintenance",
                                       max_retries=3, time_limit=120 * MINUTE_MS),
        rollup_metrics=_declare(broker, rollup_metrics, "maintenance", max_retries=0,
                                time_limit=10 * MINUTE_MS),
        recount_metrics=_declare(broker, recount_metrics, "maintenance", max_retries=0,
                                 time_limit=10 * MINUTE_MS),
        record_health=_declare(broker, record_health, "maintenance", max_retries=0,
                               time_limit=MINUTE_MS),
        run_privacy_jobs=_declare(broker, run_privacy_jobs, "maintenance", max_retries=0,
                                  time_limit=30 * MINUTE_MS),
    )
    return actors


def broker_status(broker: Broker) -> str:
    """Raise if the broker cannot be reached; a short description for /api/health."""
    kind = ping_broker(broker)
    depths = queue_depths(broker)
    return f"{kind}, {sum(depths.values())} message(s) waiting" if depths else kind


def _declare(broker: Broker, fn: Callable[..., None], queue: str, **options: Any) -> ActorFn:
    declare = dramatiq.actor(actor_name=fn.__name__, queue_name=queue, broker=broker, **options)
    actor: ActorFn = declare(fn)
    return actor


def handler_actor(broker: Broker, runtime: Runtime, handler: Handler,
                  siblings: dict[str, ActorFn] | None = None) -> ActorFn:
    """The actor that runs `handler`; `siblings` (name -> actor) is where it finds itself to
    send a batch's leftovers one by one."""
    siblings = {} if siblings is None else siblings

    def run(event_ids: str | list[str]) -> None:
        # One id (a message of its own) or a batch of them, as the publisher sends.
        ids = [event_ids] if isinstance(event_ids, str) else event_ids
        if len(ids) == 1:
            _run_alone(runtime, handler, uuid.UUID(ids[0]))
            return
        outcome = run_batch(runtime.current_uow(), runtime.services, handler,
                            [uuid.UUID(event_id) for event_id in ids],
                            runtime.current_message().message_id)
        actor = siblings[handler.name]
        for event in outcome.alone:
            # A failed event waits as long as a failed message would before its first retry.
            actor.send_with_options(args=(str(event.event_id),),
                                    delay=actor.options["min_backoff"] if event.failed else None)

    run.__name__ = run.__qualname__ = handler.name
    policy = handler.retry
    declare = dramatiq.actor(
        actor_name=handler.name, queue_name=handler.queue, broker=broker,
        max_retries=policy.max_retries, min_backoff=policy.min_backoff_ms,
        max_backoff=policy.max_backoff_ms, time_limit=policy.time_limit_ms, throws=(GiveUp,),
    )
    actor: ActorFn = declare(run)
    siblings[handler.name] = actor
    return actor


def _run_alone(runtime: Runtime, handler: Handler, event_id: uuid.UUID) -> None:
    try:
        run_handler(runtime.current_uow(), runtime.services, handler, event_id,
                    runtime.current_message().message_id)
    except ClaimHeld as held:
        raise dramatiq.Retry(delay=held.retry_in_ms) from None
    except handler.gives_up_on as error:
        raise GiveUp(str(error)) from error
