"""Reading the figures back: a practice sees its own points only; series over a period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from core import clock
from core.metrics import read, rollup
from core.metrics.models import MetricPoint
from core.metrics.names import Metric
from core.scoping import TenantContext, system_session
from core.uow import UnitOfWork
from tests.support.activity import MovableClock, client_signs_up, logs_in, scope_of
from tests.support.factories import practice

START = datetime(2026, 3, 2, 9, tzinfo=UTC)


@pytest.fixture
def moving_clock(monkeypatch) -> MovableClock:
    moving = MovableClock(START)
    monkeypatch.setattr(clock, "now", moving)
    return moving


@pytest.fixture
def rolled_up(db, settings, moving_clock):
    """Harbour and Elm on Monday; two more clients join Harbour on Wednesday; a rollup each
    day at noon."""
    harbour = practice(db, "Harbour", slug_hint="harbour")
    elm = practice(db, "Elm", slug_hint="elm")
    logs_in(db, settings, harbour.client_email)
    moving_clock.at(START + timedelta(hours=3))
    _rollup(db)
    moving_clock.at(START + timedelta(days=2))
    client_signs_up(db, harbour, "wed1@harbour.example")
    client_signs_up(db, harbour, "wed2@harbour.example")
    moving_clock.at(START + timedelta(days=2, hours=3))
    _rollup(db)
    return harbour, elm


def _rollup(db) -> None:
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        rollup.run(uow)


def test_a_practice_session_sees_its_own_points_and_nothing_else(db, rolled_up):
    harbour, elm = rolled_up
    harbour_scope, elm_scope = scope_of(db, harbour.tenant.id), scope_of(db, elm.tenant.id)
    with UnitOfWork(db, tenant=TenantContext.of(harbour.tenant.id)) as uow:
        points = uow.session.execute(sa.select(MetricPoint)).scalars().all()
        assert points and {p.tenant_id for p in points} == {harbour.tenant.id}
        own = read.figures(uow.session, tenant_id=harbour.tenant.id)
        assert own.people_by_role == {"client": 3, "therapist": 1}
        assert own.active_people["30d"] == {"client": 1, "therapist": 0}
        # Another practice's figures, or the platform's, are simply not there.
        assert read.figures(uow.session, tenant_id=elm.tenant.id).people_by_role == {}
        assert read.figures(uow.session).people_by_role == {}
        if db.dialect == "postgresql":  # row-level security: raw SQL is walled in too
            scopes = uow.session.execute(sa.text(
                "SELECT DISTINCT scope FROM metric_points")).scalars().all()
            assert scopes == [harbour_scope]
    with system_session(db) as session:
        assert {p.scope for p in session.execute(sa.select(MetricPoint)).scalars()} == {
            "platform", harbour_scope, elm_scope}
        assert read.figures(session).people_by_role == {"admin": 0, "client": 4, "therapist": 2}


def test_row_level_security_refuses_a_practice_writing_platform_points(db, rolled_up):
    if db.dialect != "postgresql":
        pytest.skip("row-level security is PostgreSQL's")
    harbour, _elm = rolled_up
    with UnitOfWork(db, tenant=TenantContext.of(harbour.tenant.id)) as uow, pytest.raises(
            sa.exc.ProgrammingError, match="row-level security"):
        uow.session.execute(sa.text(
            "INSERT INTO metric_points (metric, scope, grain, bucket, dimension, tenant_id, "
            "value, computed_at) VALUES ('people', 'platform', 'day', now(), 'client', NULL, 1, "
            "now())"))


def test_series_for_a_period_fill_every_day(db, rolled_up):
    harbour, _elm = rolled_up
    with system_session(db) as session:
        series = {(s.metric, s.dimension): s for s in read.series(
            session, [Metric.SIGNUPS, Metric.PEOPLE], days=7, tenant_id=harbour.tenant.id)}
    days = [START.replace(hour=0) + timedelta(days=n) for n in range(-4, 3)]
    signups = series[("signups", "client")]
    assert [p.bucket for p in signups.points] == days
    # A flow counts nothing on a day without a point; a level keeps the day before's value.
    assert [p.value for p in signups.points] == [0, 0, 0, 0, 1, 0, 2]
    assert [p.value for p in series[("people", "client")].points] == [0, 0, 0, 0, 1, 1, 3]
    with pytest.raises(read.UnknownPeriod):
        read.series(session, [Metric.SIGNUPS], days=14)


def test_the_report_says_how_old_its_figures_are(db, rolled_up, moving_clock):
    moving_clock.at(START + timedelta(days=2, hours=3, minutes=4))
    with system_session(db) as session:
        report = read.report(session, days=30)
    assert report.figures.as_of == START + timedelta(days=2, hours=2, minutes=59)
    assert report.figures.age_seconds == 5 * 60
    assert {s.metric for s in report.series} >= {"signups", "active_practices", "outbox_backlog"}
    assert all(len(s.points) == 30 for s in report.series)


def test_before_any_rollup_there_is_nothing_to_show(db):
    with system_session(db) as session:
        figures = read.figures(session)
    assert (figures.as_of, figures.age_seconds, figures.people_by_role) == (None, None, {})
    assert figures.onboarding_completion_rate is None
