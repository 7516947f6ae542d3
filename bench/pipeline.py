"""The event pipeline against raw Dramatiq: one worker process each, same Redis broker, same
worker flags and Dramatiq settings.

Both entries time the same thing: from submitting the first item (enqueueing a no-op message
from one thread; committing an event from one of several threads, as concurrent requests do)
until the last one is done (the no-op actor counted it in Redis, its e-mail reached the SMTP
sink, a process of its own), with the worker already running. Just before the clock starts the
worker finishes one warm-up item, so its consumers poll at their shortest back-off rather than
the up to 1 s an idle Dramatiq consumer sleeps. Completion is polled every 20 ms once everything
is submitted, for both entries.

The platform's modules are imported only when the pipeline entry runs, so `--list` and the HTTP
entries do not depend on them.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from dramatiq.middleware import Middleware

from bench import backends, inprocess
from bench.measure import Context, Sample
from bench.noop_worker import done_count, noop_actor, redis_broker
from bench.smtp_sink import smtp_sink
from bench.worker_process import WorkerOptions, WorkerProcess, dramatiq_worker, wait_for_count

POLL_SECONDS = 0.02
WARM_POLL_SECONDS = 0.005
STARTUP_TIMEOUT = 60.0
# Requests committing events at once, as in one web process (its gunicorn threads); a single
# thread would measure how fast one thread can commit, not the pipeline.
COMMITTING_THREADS = 8
# What the pipeline writes; emptied before each of its measurements (children first). The mail
# log too: every measurement sends to the same addresses, and an address may have five test
# e-mails a day (core.mail.allowance), so a sixth measurement's e-mails would be held back.
PIPELINE_TABLES = ("handler_runs", "dead_letters", "audit_entries", "mail_log", "events")


@dataclass(frozen=True)
class Timing:
    items: int
    submit_seconds: float  # first submit until the last submit returned
    total_seconds: float  # first submit until the last item was seen done

    @property
    def rate(self) -> float:
        return self.items / self.total_seconds

    @property
    def submit_rate(self) -> float:
        return self.items / self.submit_seconds


def timed(items: int, submit: Callable[[int], None], done: Callable[[], int],
          worker: WorkerProcess, *, submitters: int = 1) -> Timing:
    """Warm the worker with item 0, then time items 1..`items`, submitted from `submitters`
    threads, until `done` counts them all."""
    submit(0)
    wait_for_count(done, 1, worker, interval=WARM_POLL_SECONDS, timeout=STARTUP_TIMEOUT)
    start = time.perf_counter()
    if submitters == 1:
        for number in range(1, items + 1):
            submit(number)
    else:
        with ThreadPoolExecutor(submitters) as pool:
            # Each thread takes every n-th item, so they all run until the end.
            list(pool.map(lambda first: [submit(n) for n in range(first, items + 1, submitters)],
                          range(1, submitters + 1)))
    submitted = time.perf_counter()
    # Only a guard against a hang: a dead worker is noticed at once.
    finished = wait_for_count(done, items + 1, worker, interval=POLL_SECONDS,
                              timeout=120 + items / 5)
    return Timing(items, submitted - start, finished - start)


# -- baseline: a no-op actor ----------------------------------------------------------------
def noop_rate(ctx: Context) -> Sample:
    options = WorkerOptions(ctx.options.prefetch)
    backends.flush_redis()  # the queues start empty
    broker = redis_broker(ctx.env["REDIS_URL"])
    actor = noop_actor(broker)

    def send(_number: int) -> None:
        actor.send()

    try:
        with dramatiq_worker("dramatiq-noop", "bench.noop_worker:boot", ctx.env, options,
                             ctx.workdir) as worker:
            timing = timed(ctx.options.messages, send, lambda: done_count(broker), worker)
    finally:
        broker.close()
    return Sample(value=timing.rate,
                  extra={"enqueue_per_s": round(timing.submit_rate, 1), **options.describe()})


# -- the platform: commit an event, its handler sends one e-mail ----------------------------
class EnqueueCounter(Middleware):
    """Counts the messages this process publishes (handler messages and audit nudges)."""

    def __init__(self) -> None:
        self.count = 0

    def after_enqueue(self, broker: Any, message: Any, delay: Any) -> None:
        self.count += 1


@dataclass(frozen=True)
class Platform:
    """The app's runtime in this process, as the web tier has it."""

    commit_event: Callable[[int], None]
    database: sa.Engine
    enqueued: EnqueueCounter


@functools.cache
def platform(env: frozenset[tuple[str, str]]) -> Platform:
    """Built once per run on the run's one in-process app and the worker side its root built."""
    from assembly import worker_side_of
    from core.mail.test_email import request_test_email

    side = worker_side_of(inprocess.app(env))
    enqueued = EnqueueCounter()
    side.broker.add_middleware(enqueued)
    the_runtime = side.runtime

    def commit_event(number: int) -> None:
        with the_runtime.unit_of_work() as uow:
            request_test_email(uow, f"bench{number}@example.com")
            uow.commit()

    return Platform(commit_event, the_runtime.services.db.engine, enqueued)


def event_rate(ctx: Context) -> Sample:
    app = platform(frozenset(ctx.env.items()))
    options = WorkerOptions(ctx.options.prefetch)
    backends.clear_tables(*PIPELINE_TABLES)
    backends.flush_redis()  # the queues start empty
    items = ctx.options.messages
    with smtp_sink() as sink, dramatiq_worker(
        "pipeline", "workers.boot", {**ctx.env, "SMTP_URL": sink.url}, options, ctx.workdir
    ) as worker:
        enqueued_before = app.enqueued.count
        timing = timed(items, app.commit_event, lambda: sink.count, worker,
                       submitters=COMMITTING_THREADS)
        messages = app.enqueued.count - enqueued_before
        audit_lag = _audit_lag(app.database, items + 1, worker)
        problems = {"duplicate_emails": sink.duplicates,
                    "dead_letters": _dead_letters(app.database)}
    problems = {kind: count for kind, count in problems.items() if count}
    return Sample(value=timing.rate, errors=sum(problems.values()), error_detail=problems, extra={
        "commits_per_s": round(timing.submit_rate, 1),
        "committing_threads": COMMITTING_THREADS,
        "messages_per_event": round(messages / (items + 1), 2),  # item 0 warmed the worker
        "audit_done_after_s": round(audit_lag, 3),
        **options.describe(),
    })


def _audit_lag(database: sa.Engine, events: int, worker: WorkerProcess) -> float:
    """Seconds from seeing the last e-mail until every event has its audit entry."""
    start = time.perf_counter()

    def audited() -> int:
        return backends.count_every_practice(database, "audit_entries")

    return wait_for_count(audited, events, worker, interval=POLL_SECONDS, timeout=60) - start


def _dead_letters(database: sa.Engine) -> int:
    return backends.count_every_practice(database, "dead_letters")

