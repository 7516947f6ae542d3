"""Dramatiq middleware: a unit of work and the request id per message, dead letters, heartbeat,
exit with the main process."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
import uuid
from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Middleware

from core import clock
from core.adapters.liveness import ProcessLiveness
from core.db import insert_ignoring_conflicts
from core.events.models import DeadLetter, HandlerRun
from core.logs import request_id_var
from core.monitoring.instruments import note_job_success
from workers.runtime import Runtime

log = logging.getLogger(__name__)

HEARTBEAT_GROUP = "workers"
HEARTBEAT_EVERY_SECONDS = 5
HEARTBEAT_TTL_SECONDS = 15


class RequestIdPropagation(Middleware):
    """Stamp the enqueuing request's id on the message, so its logs carry the same id."""

    def before_enqueue(self, broker: Any, message: dramatiq.Message[Any], delay: Any) -> None:
        if "request_id" not in message.options:
            request_id = request_id_var.get()
            if request_id:
                message.options["request_id"] = request_id


class UnitOfWorkPerMessage(Middleware):
    """Each message gets its own session; whatever the actor did not commit is rolled back."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def before_process_message(self, broker: Any, message: MessageProxy) -> None:
        request_id_var.set(message.options.get("request_id") or f"msg-{message.message_id}")
        self.runtime.enter_message(message)

    def after_process_message(self, broker: Any, message: MessageProxy, *,
                              result: Any = None, exception: BaseException | None = None) -> None:
        self._close()

    def after_skip_message(self, broker: Any, message: MessageProxy) -> None:
        self._close()

    def _close(self) -> None:
        self.runtime.leave_message()
        request_id_var.set(None)


class DeadLetters(Middleware):
    """Keep a copy of every message that failed for good, for `flask jobs dead-letters`."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def after_process_message(self, broker: Any, message: MessageProxy, *,
                              result: Any = None, exception: BaseException | None = None) -> None:
        if exception is not None:
            # A message given up without a retry (GiveUp) carries no traceback of its own.
            message.options["last_error"] = f"{type(exception).__name__}: {exception}"[:2000]

    def after_nack(self, broker: Any, message: MessageProxy) -> None:
        try:
            self._record(message)
        except Exception:
            log.exception("could not record dead letter %s; it is still in the broker's "
                          "dead-letter queue", message.message_id)

    def _record(self, message: MessageProxy) -> None:
        services = self.runtime.services
        event_id = None
        # A batch (a list of ids) has no one event; it is kept whole and replays whole.
        if message.args and isinstance(message.args[0], str):
            try:
                event_id = uuid.UUID(message.args[0])
            except ValueError:
                event_id = None
        error = message.options.get("last_error")
        queue_name = message.queue_name.removesuffix(".DQ").removesuffix(".XQ")
        clean = message.copy(queue_name=queue_name)
        body = {key: value for key, value in clean.asdict().items()}
        with services.db.session() as session:
            run = session.get(HandlerRun, (event_id, message.actor_name)) if event_id else None
            # Our own count includes deliveries that killed their worker; Dramatiq's does not.
            attempts = run.attempts if run else max(1, int(message.options.get("retries", 0)))
            insert_ignoring_conflicts(session, DeadLetter.__table__, [{  # type: ignore[arg-type]
                "message_id": message.message_id,
                "queue": queue_name,
                "actor": message.actor_name,
                "event_id": event_id,
                "error": error,
                "attempts": attempts,
                "message": body,
                "failed_at": clock.now(),
            }])
            session.commit()
        log.error("message %s (%s) moved to dead letters: %s",
                  message.message_id, message.actor_name, error)


class ScheduledJobSuccess(Middleware):
    """A scheduled job's actor finished: /metrics shows when, per job."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def after_process_message(self, broker: Any, message: MessageProxy, *,
                              result: Any = None, exception: BaseException | None = None) -> None:
        job = message.options.get("scheduled_job")
        if exception is None and job:
            try:
                note_job_success(self.runtime.services.cache, str(job))
            except Exception as error:  # a metric, never a reason to fail the message
                log.warning("could not note job %s's success: %s", job, type(error).__name__)


class Heartbeat(Middleware):
    """While a worker process runs, it says so every few seconds (see the health check)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.member = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"

    def after_worker_boot(self, broker: Any, worker: Any) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker: Any, worker: Any) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.runtime.services.cache.beat(HEARTBEAT_GROUP, self.member,
                                                 HEARTBEAT_TTL_SECONDS)
            except Exception as error:
                log.warning("heartbeat failed: %s", type(error).__name__)
            self._stop.wait(HEARTBEAT_EVERY_SECONDS)


class ClaimLiveness(Middleware):
    """A worker process on PostgreSQL holds its liveness lock while it runs: a message that a
    restarted broker hands to another process while this one still works on it waits there
    instead of repeating its effect (core.adapters.liveness)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def before_worker_boot(self, broker: Any, worker: Any) -> None:
        # Before the worker threads start: every claim this process makes names it.
        db = self.runtime.services.db
        if db.dialect == "postgresql":
            liveness = ProcessLiveness(db.url, statement_timeout_ms=db.statement_timeout_ms)
            liveness.start()
            self.runtime.services.liveness = liveness

    def before_worker_shutdown(self, broker: Any, worker: Any) -> None:
        liveness, self.runtime.services.liveness = self.runtime.services.liveness, None
        if liveness is not None:
            liveness.stop()


class ExitWithParent(Middleware):
    """A worker process of the `dramatiq` command stops when its main process is gone. Killed
    outright (SIGKILL, the OOM killer), the main process cannot stop its worker processes: they
    would go on consuming beside the replacement a supervisor starts, and outlive the supervisor
    too. gunicorn's workers do the same."""

    def __init__(self) -> None:
        # Known from the fork, even when the main process died while this one was booting.
        main = multiprocessing.parent_process()
        self.main_pid = main.pid if main else None

    def after_process_boot(self, broker: Any) -> None:
        if self.main_pid is not None:
            threading.Thread(target=self._watch, args=(self.main_pid,), name="exit-with-parent",
                             daemon=True).start()

    @staticmethod
    def _watch(main_pid: int) -> None:
        while True:
            try:
                os.kill(main_pid, 0)
            except ProcessLookupError:
                break
            time.sleep(1)
        log.warning("worker process %d: main process %d is gone; stopping", os.getpid(), main_pid)
        os.kill(os.getpid(), signal.SIGTERM)  # dramatiq's own graceful stop


def platform_middleware(runtime: Runtime) -> list[Middleware]:
    return [RequestIdPropagation(), UnitOfWorkPerMessage(runtime), DeadLetters(runtime),
            ScheduledJobSuccess(runtime), Heartbeat(runtime)]
