"""What one warm request sends to the backends: SQL statements and Redis commands, counted in the
bench process's own app (same settings as the servers), not timed.

SQL: the statements SQLAlchemy executes, plus one per transaction for the row-level security
settings, which go to the driver directly (core.scoping) and which SQLAlchemy's events do not
see. Redis: commands, and round trips (a pipeline or a script is one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from flask import Flask
    from flask.testing import FlaskClient


@dataclass
class Counted:
    statements: list[str] = field(default_factory=list)
    transactions: int = 0
    redis_commands: int = 0
    redis_round_trips: int = 0

    def figures(self, prefix: str = "") -> dict[str, float | str]:
        return {f"{prefix}sql_statements": len(self.statements) + self.transactions,
                f"{prefix}redis_commands": self.redis_commands,
                f"{prefix}redis_round_trips": self.redis_round_trips}


@contextmanager
def counting(client: FlaskClient) -> Iterator[Counted]:
    from redis.connection import AbstractConnection
    from sqlalchemy.orm import Session

    engine = client.application.extensions["services"].db.engine
    counted = Counted()

    def statement(_conn: object, _cursor: object, text: str, *_args: object) -> None:
        counted.statements.append(text)

    def transaction(session: Session, _transaction: object, connection: sa.Connection) -> None:
        if connection.dialect.name == "postgresql":
            counted.transactions += 1

    original_one: Callable[..., Any] = AbstractConnection.send_command
    original_many: Callable[..., Any] = AbstractConnection.pack_commands
    original_send: Callable[..., Any] = AbstractConnection.send_packed_command

    def send_command(self: Any, *args: Any, **kwargs: Any) -> Any:
        counted.redis_commands += 1
        return original_one(self, *args, **kwargs)

    def pack_commands(self: Any, commands: Any) -> Any:  # a pipeline
        commands = list(commands)
        counted.redis_commands += len(commands)
        return original_many(self, commands)

    def send_packed_command(self: Any, *args: Any, **kwargs: Any) -> Any:
        counted.redis_round_trips += 1
        return original_send(self, *args, **kwargs)

    sa.event.listen(engine, "before_cursor_execute", statement)
    sa.event.listen(Session, "after_begin", transaction)
    patched = {"send_command": send_command, "pack_commands": pack_commands,
               "send_packed_command": send_packed_command}
    originals = {"send_command": original_one, "pack_commands": original_many,
                 "send_packed_command": original_send}
    for name, replacement in patched.items():
        setattr(AbstractConnection, name, replacement)
    try:
        yield counted
    finally:
        for name, original in originals.items():
            setattr(AbstractConnection, name, original)
        sa.event.remove(Session, "after_begin", transaction)
        sa.event.remove(engine, "before_cursor_execute", statement)


def anonymous_request(app: Flask, method: str, path: str, *,
                      warm_up: int = 2) -> dict[str, float | str]:
    """The counts of one request from a browser without a cookie (as wrk sends them), after
    `warm_up` of the same."""
    import logging

    log = logging.getLogger("web.request")
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        for _ in range(warm_up):
            app.test_client().open(path, method=method)
        client = app.test_client()
        with counting(client) as counted:
            status = client.open(path, method=method).status_code
    finally:
        log.setLevel(level)
    return {**counted.figures(), "counted_status": status}
