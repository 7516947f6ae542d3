"""Retries run out into dead letters that an operator can list and replay; a message that kills
its worker every time is given up instead of looping forever."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from core.events.models import DeadLetter, HandlerRun
from core.events.types import EventType
from core.pipeline.handlers import Handler, HandlerContext, RetryPolicy
from core.pipeline.runner import GiveUp, Outcome, run_handler
from workers.actors import handler_actor


class Switch:
    def __init__(self) -> None:
        self.failing = True
        self.calls = 0

    def __call__(self, ctx: HandlerContext) -> None:
        self.calls += 1
        if self.failing:
            raise ConnectionError("receiver down")


@pytest.fixture
def flaky(side):
    switch = Switch()
    handler = Handler(name=f"flaky_{uuid.uuid4().hex[:6]}", queue="default",
                      events=frozenset({EventType.TEST_EMAIL_REQUESTED}), run=switch,
                      retry=RetryPolicy(max_retries=2, min_backoff_ms=10, max_backoff_ms=20))
    return handler, handler_actor(side.broker, side.runtime, handler), switch


def _event(side):
    with side.runtime.unit_of_work() as uow:
        event = uow.record(EventType.TEST_EMAIL_REQUESTED, payload={"to": "x@example.com"})
        uow.commit()
    return event


def test_exhausted_retries_become_a_dead_letter_that_can_be_replayed(app, side, flaky, worker,
                                                                     db):
    handler, actor, switch = flaky
    event = _event(side)
    actor.send(str(event.id))
    worker.drain()
    assert switch.calls == 3  # the first try and two retries

    cli = app.test_cli_runner()
    listing = cli.invoke(args=["jobs", "dead-letters"])
    assert listing.exit_code == 0
    assert handler.name in listing.output and str(event.id) in listing.output
    assert "ConnectionError: receiver down" in listing.output
    with db.session() as session:
        letter = session.execute(sa.select(DeadLetter)).scalar_one()
        assert (letter.actor, letter.attempts, letter.queue) == (handler.name, 3, "default")

    switch.failing = False
    replay = cli.invoke(args=["jobs", "retry", str(letter.id)])
    assert replay.exit_code == 0, replay.output
    worker.drain()
    assert switch.calls == 4
    with db.session() as session:
        run = session.get(HandlerRun, (event.id, handler.name))
        assert run.status == "done"
        assert session.get(DeadLetter, letter.id).retried_at is not None
    assert cli.invoke(args=["jobs", "dead-letters"]).output.strip() == "no dead letters"
    assert "nothing to retry" in cli.invoke(args=["jobs", "retry", "--all"]).output


class WorkerKilled(BaseException):
    """Stands in for SIGKILL/OOM: nothing after it runs, no except Exception catches it."""


def test_a_message_that_kills_its_worker_is_given_up_after_its_attempts(app, db, side):
    def poison(ctx: HandlerContext) -> None:
        raise WorkerKilled

    handler = Handler(name="poison", queue="default", events=frozenset(), run=poison,
                      retry=RetryPolicy(max_retries=2, min_backoff_ms=10, max_backoff_ms=10))
    event = _event(side)
    for _ in range(handler.retry.max_attempts):
        # The broker redelivers the same message after each kill.
        with side.runtime.unit_of_work() as uow, pytest.raises(WorkerKilled):
            run_handler(uow, side.services, handler, event.id, "message-1")
    with side.runtime.unit_of_work() as uow, pytest.raises(GiveUp):
        run_handler(uow, side.services, handler, event.id, "message-1")
    with db.session() as session:
        run = session.get(HandlerRun, (event.id, "poison"))
        assert run.status == "dead"
    # Later deliveries are refused at once, without running the effect.
    with side.runtime.unit_of_work() as uow, pytest.raises(GiveUp):
        run_handler(uow, side.services, handler, event.id, "message-2")


def test_a_duplicate_message_waits_while_the_effect_is_claimed(app, db, side):
    from core.pipeline.runner import ClaimHeld

    calls = []

    def slow(ctx: HandlerContext) -> None:
        calls.append(ctx.message_id)
        # While this first delivery is still running, a duplicate publish arrives.
        with side.runtime.unit_of_work() as other, pytest.raises(ClaimHeld):
            run_handler(other, side.services, handler, event.id, "message-B")

    handler = Handler(name="slow", queue="default", events=frozenset(), run=slow)
    event = _event(side)
    with side.runtime.unit_of_work() as uow:
        assert run_handler(uow, side.services, handler, event.id, "message-A") == Outcome.DONE
    with side.runtime.unit_of_work() as uow:
        assert run_handler(uow, side.services, handler, event.id,
                           "message-B") == Outcome.ALREADY_DONE
    assert calls == ["message-A"]
