"""PostgreSQL connections that never wait on the server without a bound.

psycopg waits for the server's answer as long as it takes, and neither TCP keepalives nor
`tcp_user_timeout` end that wait when the path is silent but not dead: a stopped proxy's kernel
still acknowledges our bytes and answers keepalives. `statement_timeout` asks the server to give
up on a slow statement, but only a server that still answers can. So every wait on the server
(a statement, a commit, a rollback, a ping) also gets a deadline on our side: past it, the
connection is closed, because its protocol state is unknown, and `ServerDidNotAnswer` raised.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg.abc import PQGen
from psycopg.errors import _WaitTimeout  # what psycopg's wait raises when its timeout expires

RV = TypeVar("RV")

# How often psycopg's wait loop wakes up to check the socket (its own default).
_WAKE_INTERVAL = 0.1


class ServerDidNotAnswer(psycopg.OperationalError):
    """The database server did not answer in time; the connection has been closed."""


class BoundedConnection(psycopg.Connection[Any]):
    """A psycopg connection whose waits on the server end after `answer_timeout` seconds."""

    answer_timeout: float | None = None  # None: wait as long as it takes (migrations)

    def wait(self, gen: PQGen[RV], interval: float = _WAKE_INTERVAL,
             timeout: float | None = None) -> RV:
        if timeout is not None or self.answer_timeout is None:
            return super().wait(gen, interval, timeout)  # psycopg's own bounded waits (cancel)
        try:
            return super().wait(gen, interval, self.answer_timeout)
        except _WaitTimeout:
            # Half-way through an exchange: nothing may use this connection again. A broken
            # connection is what SQLAlchemy's psycopg dialect takes for a disconnect, so the
            # pool invalidates it instead of taking it back.
            self.pgconn.finish()
            raise ServerDidNotAnswer(
                f"the database server did not answer within {self.answer_timeout:g}s; "
                "connection closed"
            ) from None

    @contextmanager
    def answering_within(self, seconds: float) -> Iterator[None]:
        """Bound the waits inside the block more tightly (a ping needs no statement's time)."""
        saved = self.answer_timeout
        self.answer_timeout = seconds if saved is None else min(seconds, saved)
        try:
            yield
        finally:
            self.answer_timeout = saved
