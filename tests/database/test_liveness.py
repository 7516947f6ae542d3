"""A worker process's liveness lock (core.adapters.liveness) on the real database."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from core.adapters import liveness
from core.scoping import system_session


@pytest.fixture
def process(db, monkeypatch):
    if db.dialect != "postgresql":
        pytest.skip("a worker process's liveness is a PostgreSQL advisory lock")
    monkeypatch.setattr(liveness, "KEEP_EVERY_S", 0.1)
    held = liveness.ProcessLiveness(db.url)
    held.start()
    yield held
    held.stop()


def _holding_pid(db, token: int) -> int | None:
    """The server process holding the token's lock, if any."""
    with system_session(db) as session:
        return session.execute(sa.text(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND classid = CAST(:namespace AS oid) AND objid = CAST(:token AS oid)"),
            {"namespace": liveness.NAMESPACE, "token": token}).scalar()


def _alive(db, token: int) -> bool:
    with system_session(db) as session:
        return liveness.alive(session, token)


def test_a_process_that_loses_its_connection_takes_its_lock_again(db, process) -> None:
    first = _holding_pid(db, process.token)
    assert first is not None and _alive(db, process.token)
    # The server ends the lock's connection (a restart, a failover, an idle timeout).
    with system_session(db) as session:
        assert session.execute(sa.text("SELECT pg_terminate_backend(:pid)"),
                               {"pid": first}).scalar()
    deadline = time.monotonic() + 10
    while _holding_pid(db, process.token) in (None, first):
        assert time.monotonic() < deadline, "the keeper did not take the lock again"
        time.sleep(0.05)
    assert _alive(db, process.token)


def test_a_stopped_process_is_no_longer_alive(db, process) -> None:
    process.stop()
    assert not _alive(db, process.token)
