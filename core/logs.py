"""Logging for every process: the request id on every line, JSON in production.

The request id lives in a context variable: the web tier sets it per request, the worker
middleware per message (carried over from the request that enqueued it), so one id follows an
action from the browser through every side effect.
"""

from __future__ import annotations

import atexit
import json
import logging
import logging.handlers
import queue
import re
import sys
import threading
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TextIO

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
# Attributes every LogRecord has; anything else was passed with extra= and is data to keep.
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}


def new_request_id() -> str:
    return uuid.uuid4().hex


def accept_request_id(incoming: str | None) -> str:
    """Reuse a caller's id (e.g. from a proxy) only if it is short and plain; else mint one."""
    if incoming and _SAFE_REQUEST_ID.match(incoming):
        return incoming
    return new_request_id()


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get() or "-"
        return True


class TextFormatter(logging.Formatter):
    """Readable lines for development; control characters escaped so input cannot forge lines."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s [%(request_id)s] %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        return _CONTROL_CHARS.sub(lambda m: f"\\x{ord(m.group()):02x}", line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line; free text is a JSON string, so it can never break the line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id_var.get(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class _Handover(logging.handlers.QueueHandler):
    """Hands records to the writer thread as they are (the message resolved now, since its
    arguments may change; the traceback kept for the writer's own formatter)."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record.msg = record.getMessage()
        record.args = None
        return record


class _BatchWriter:
    """Writes what request threads logged, every few milliseconds, in one write: a request
    thread only appends to a queue (no lock, no wake-up of another thread per line)."""

    INTERVAL_SECONDS = 0.02

    def __init__(self, records: queue.SimpleQueue[logging.LogRecord],
                 handler: logging.StreamHandler[TextIO]) -> None:
        self.records = records
        self.handler = handler
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(self.INTERVAL_SECONDS):
            self.write_waiting()
        self.write_waiting()

    def write_waiting(self) -> None:
        lines = []
        while True:
            try:
                record = self.records.get_nowait()
            except queue.Empty:
                break
            try:
                lines.append(self.handler.format(record) + "\n")
            except Exception:
                self.handler.handleError(record)
        if lines:
            self.handler.stream.write("".join(lines))
            self.handler.flush()

    def stop(self) -> None:
        if not self._stopped.is_set():
            self._stopped.set()
            self._thread.join(timeout=5)


_writers: list[_BatchWriter] = []


def configure_logging(log_format: str = "text", level: str = "INFO", *,
                      take_over: bool = False, queued: bool = False) -> None:
    """Install our handler on the root logger. `take_over` also removes handlers others set up
    (the dramatiq launcher's), so every line has one format and carries the request id.
    `queued` (the web process): request threads hand their lines to one writer thread instead
    of queueing on the stream's lock; lines still waiting are written at exit."""
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler: logging.Handler = stream
    if queued:
        handover: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        handler = _Handover(handover)
        writer = _BatchWriter(handover, stream)
        _writers.append(writer)
        atexit.register(writer.stop)
    handler.addFilter(RequestIdFilter())  # in the thread that logs: the request id is its own
    root = logging.getLogger()
    for existing in list(root.handlers):
        if take_over or getattr(existing, "_platform_handler", False):
            root.removeHandler(existing)
            if isinstance(existing, _Handover):
                _stop_writer_of(existing)
    handler._platform_handler = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # Libraries that are chatty at INFO.
    for name in ("pika", "apscheduler", "werkzeug", "alembic.runtime.plugins"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _stop_writer_of(handover: _Handover) -> None:
    for writer in [item for item in _writers if item.records is handover.queue]:
        writer.stop()
        _writers.remove(writer)
