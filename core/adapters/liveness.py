"""Whether a worker process is alive, as PostgreSQL sees it.

A worker process holds an advisory lock keyed by a token of its own, on a connection of its own,
for as long as it lives. PostgreSQL releases the lock the moment that connection ends, so a
process killed outright (SIGKILL, the OOM killer) stops holding it at once, while one that is
merely busy — in the middle of an SMTP conversation — keeps it. A claim on an effect records its
holder's token; a delivery that finds the claim taken under its own message id (the broker handed
the message out again, after a restart dropped the connection it was to be acknowledged on) asks
whether that holder still holds its lock: if so, the first delivery is still at work elsewhere.

While the process's own connection is away (a database restart), its lock is not held and the
process counts as gone; the keeper takes the lock again once the database answers.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core.db import create_db_engine

log = logging.getLogger(__name__)

# The first key of two-key advisory locks (the second is a process's token): this module's alone.
NAMESPACE = 0x706970
KEEP_EVERY_S = 5.0

_TAKE = sa.text("SELECT pg_try_advisory_lock(:namespace, :token)")
_HELD = sa.text(
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND classid = CAST(:namespace AS oid) AND objid = CAST(:token AS oid) AND objsubid = 2)")


def alive(session: Session, token: int) -> bool:
    """Whether the process whose token this is holds its lock now (PostgreSQL only)."""
    if session.get_bind().dialect.name != "postgresql":
        return False
    return bool(session.execute(_HELD, {"namespace": NAMESPACE, "token": token}).scalar())


class ProcessLiveness:
    """This process's lock, taken by `start` and kept by a thread until `stop`."""

    def __init__(self, url: str | sa.URL, *, statement_timeout_ms: int | None = None) -> None:
        self._engine = create_db_engine(url, pool_size=1, statement_timeout_ms=statement_timeout_ms
                                        ).execution_options(isolation_level="AUTOCOMMIT")
        self.token = _new_token()
        self._connection: sa.Connection | None = None
        self._ever_held = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Take the lock (or, if the database is away, leave that to the keeper) and keep it."""
        try:
            self._take()
        except sa.exc.SQLAlchemyError as error:
            log.warning("worker liveness lock not taken yet (%s)", type(error).__name__)
        self._thread = threading.Thread(target=self._keep, name="liveness", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._drop()
        self._engine.dispose()

    def _take(self) -> None:
        """Take the lock on a new connection. A token already held before this process ever
        held it (another live process drew the same) gives way to a new one; once held, it may
        still be held by our own lost connection, which the server has not seen end yet: that
        still says we are alive, and the next round tries again."""
        connection = self._engine.connect()
        try:
            for _ in range(3):
                if connection.execute(_TAKE, {"namespace": NAMESPACE, "token": self.token}
                                      ).scalar():
                    self._connection, self._ever_held = connection, True
                    return
                if self._ever_held:
                    break
                self.token = _new_token()
        except BaseException:
            connection.close()
            raise
        connection.close()

    def _keep(self) -> None:
        while not self._stop.wait(KEEP_EVERY_S):
            try:
                if self._connection is None:
                    again = self._ever_held
                    self._take()
                    if self._connection is not None:
                        log.warning("worker liveness lock held%s", " again" if again else "")
                else:
                    self._connection.execute(sa.text("SELECT 1"))
            except sa.exc.SQLAlchemyError as error:
                if self._connection is not None:
                    log.warning("worker liveness lock lost (%s); taking it again once the "
                                "database answers", type(error).__name__)
                self._drop()

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                connection.close()


def _new_token() -> int:
    return secrets.randbelow(2**31 - 1) + 1
