"""Metrics rollup: exact figures for two practices, incremental ticks that recount only what
changed, levels that age, crashes that the next run repairs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from core import clock
from core.events.models import Event
from core.identity.models import Account
from core.metrics import read, rollup
from core.metrics.models import MetricPoint, MetricRollup
from core.onboarding.stages import Stage
from core.scoping import TenantContext, system_session
from core.uow import UnitOfWork
from tests.support.activity import (
    MovableClock,
    all_points,
    client_signs_up,
    finishes_onboarding,
    invites,
    logs_in,
    moves_to,
    scope_of,
)
from tests.support.factories import practice

MONDAY = datetime(2026, 3, 2, tzinfo=UTC)
DAY = MONDAY


def at(hour: int, minute: int = 0, *, days: int = 0) -> datetime:
    return MONDAY + timedelta(days=days, hours=hour, minutes=minute)


@pytest.fixture
def moving_clock(monkeypatch) -> MovableClock:
    moving = MovableClock(at(9, 10))
    monkeypatch.setattr(clock, "now", moving)
    return moving


@pytest.fixture
def monday(db, settings, moving_clock):
    """Two practices on Monday morning. Harbour: therapist and client (set up at 09:10), Walker
    joins at 09:20 and finishes at 10:05; the therapist signs in at 10:15. Elm: the same two,
    Ivy joins at 09:30 and stops after the first step (09:40); Elm's client signs in at 10:20."""
    harbour = practice(db, "Harbour", slug_hint="harbour")
    elm = practice(db, "Elm", slug_hint="elm")
    moving_clock.at(at(9, 20))
    walker = client_signs_up(db, harbour, "walker@harbour.example")
    moving_clock.at(at(9, 30))
    ivy = client_signs_up(db, elm, "ivy@elm.example")
    moving_clock.at(at(9, 40))
    moves_to(db, ivy, Stage.PERSONAL_INFO)
    moving_clock.at(at(10, 5))
    finishes_onboarding(db, walker)
    moving_clock.at(at(10, 15))
    logs_in(db, settings, harbour.therapist_email)
    moving_clock.at(at(10, 20))
    logs_in(db, settings, elm.client_email)
    return harbour, elm


def run(db, **options) -> rollup.RollupReport:
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        return rollup.run(uow, **options)


def day_figures(db, scope: str, bucket: datetime = DAY, grain: str = "day") -> dict:
    return {(key.metric, key.dimension): value for key, value in all_points(db).items()
            if key.scope == scope and key.grain == grain and key.bucket == bucket}


def undispatched(db) -> int:
    with system_session(db) as session:
        return session.execute(sa.select(sa.func.count()).where(
            Event.dispatched_at.is_(None))).scalar_one()


HARBOUR_MONDAY = {
    ("signups", "client"): 2, ("signups", "therapist"): 1,
    ("onboarding_started", "client"): 2, ("onboarding_started", "therapist"): 1,
    ("onboarding_completed", "client"): 2, ("onboarding_completed", "therapist"): 1,
    ("onboarding_steps", "client:STARTED"): 2, ("onboarding_steps", "client:PERSONAL_INFO"): 2,
    ("onboarding_steps", "client:TERMS"): 2, ("onboarding_steps", "therapist:STARTED"): 1,
    ("onboarding_steps", "therapist:PERSONAL_INFO"): 1,
    ("onboarding_steps", "therapist:PROFESSIONAL_INFO"): 1,
    ("onboarding_steps", "therapist:TERMS"): 1,
    # The client set up at 09:10 took no time; Walker took 45 minutes.
    ("onboarding_median_seconds", "client"): 1350, ("onboarding_median_seconds", "therapist"): 0,
    ("invitations_sent", ""): 1,
    ("people", "client"): 2, ("people", "therapist"): 1,
    ("onboarding_done", "client"): 2, ("onboarding_done", "therapist"): 1,
    ("active_1d", "client"): 0, ("active_1d", "therapist"): 1,
    ("active_7d", "client"): 0, ("active_7d", "therapist"): 1,
    ("active_30d", "client"): 0, ("active_30d", "therapist"): 1,
    ("active_practices", ""): 1,
}
ELM_MONDAY = {
    ("signups", "client"): 2, ("signups", "therapist"): 1,
    ("onboarding_started", "client"): 2, ("onboarding_started", "therapist"): 1,
    ("onboarding_completed", "client"): 1, ("onboarding_completed", "therapist"): 1,
    ("onboarding_steps", "client:STARTED"): 2, ("onboarding_steps", "client:PERSONAL_INFO"): 1,
    ("onboarding_steps", "client:TERMS"): 1, ("onboarding_steps", "therapist:STARTED"): 1,
    ("onboarding_steps", "therapist:PERSONAL_INFO"): 1,
    ("onboarding_steps", "therapist:PROFESSIONAL_INFO"): 1,
    ("onboarding_steps", "therapist:TERMS"): 1,
    ("onboarding_median_seconds", "client"): 0, ("onboarding_median_seconds", "therapist"): 0,
    ("invitations_sent", ""): 1,
    ("people", "client"): 2, ("people", "therapist"): 1,
    ("onboarding_done", "client"): 1, ("onboarding_done", "therapist"): 1,
    ("active_1d", "client"): 1, ("active_1d", "therapist"): 0,
    ("active_7d", "client"): 1, ("active_7d", "therapist"): 0,
    ("active_30d", "client"): 1, ("active_30d", "therapist"): 0,
    ("active_practices", ""): 1,
}


def test_exact_figures_for_two_practices_and_the_platform(db, monday, moving_clock):
    harbour, elm = monday
    moving_clock.at(at(10, 30))
    report = run(db)
    assert report.full and report.as_of == at(10, 29)
    assert report.days == (DAY,)

    assert day_figures(db, scope_of(db, harbour.tenant.id)) == HARBOUR_MONDAY
    assert day_figures(db, scope_of(db, elm.tenant.id)) == ELM_MONDAY
    platform = day_figures(db, "platform")
    assert platform == {
        ("signups", "client"): 4, ("signups", "therapist"): 2,
        ("onboarding_started", "client"): 4, ("onboarding_started", "therapist"): 2,
        ("onboarding_completed", "client"): 3, ("onboarding_completed", "therapist"): 2,
        ("onboarding_steps", "client:STARTED"): 4,
        ("onboarding_steps", "client:PERSONAL_INFO"): 3, ("onboarding_steps", "client:TERMS"): 3,
        ("onboarding_steps", "therapist:STARTED"): 2,
        ("onboarding_steps", "therapist:PERSONAL_INFO"): 2,
        ("onboarding_steps", "therapist:PROFESSIONAL_INFO"): 2,
        ("onboarding_steps", "therapist:TERMS"): 2,
        # Medians are taken over the platform's completions (0, 0, 2700 s), not added up.
        ("onboarding_median_seconds", "client"): 0,
        ("onboarding_median_seconds", "therapist"): 0,
        ("invitations_sent", ""): 2,
        ("people", "client"): 4, ("people", "therapist"): 2, ("people", "admin"): 0,
        ("onboarding_done", "client"): 3, ("onboarding_done", "therapist"): 2,
        ("active_1d", "client"): 1, ("active_1d", "therapist"): 1, ("active_1d", "admin"): 0,
        ("active_7d", "client"): 1, ("active_7d", "therapist"): 1, ("active_7d", "admin"): 0,
        ("active_30d", "client"): 1, ("active_30d", "therapist"): 1, ("active_30d", "admin"): 0,
        ("active_practices", ""): 2,
        ("outbox_backlog", ""): undispatched(db),
    }
    # The platform's hours too (a practice's figures are by the day): Walker's completion is
    # the 10 o'clock one; the levels stand in the hour of the rollup.
    ten = day_figures(db, "platform", at(10), "hour")
    assert (ten[("onboarding_completed", "client")], ten[("onboarding_median_seconds", "client")],
            ten[("people", "client")], ten[("active_practices", "")]) == (1, 2700, 4, 2)
    assert ("signups", "client") not in ten
    assert day_figures(db, "platform", at(9), "hour")[("signups", "client")] == 4
    assert day_figures(db, scope_of(db, harbour.tenant.id), at(10), "hour") == {}

    with system_session(db) as session:
        figures = read.figures(session)
    assert (figures.active_practices, figures.active_users) == (2, 2)
    assert figures.people_by_role == {"admin": 0, "client": 4, "therapist": 2}
    assert figures.onboarding_completion_rate == pytest.approx(5 / 6)
    assert figures.completion_rate_by_role == {"client": 0.75, "therapist": 1.0}
    assert (figures.as_of, figures.age_seconds) == (at(10, 29), 60)


def test_a_second_rollup_changes_nothing(db, monday, moving_clock):
    moving_clock.at(at(10, 30))
    run(db)
    before = all_points(db)
    moving_clock.at(at(10, 35))
    again = run(db)  # incremental: nothing happened since
    assert (again.hours, again.days, again.points_written) == ((), (), 0)
    full_again = run(db, full=True)  # and from scratch: the same figures, nothing rewritten
    assert full_again.full and full_again.points_written == 0
    assert all_points(db) == before


def test_a_tick_recounts_only_the_buckets_that_changed(db, monday, moving_clock):
    harbour, _elm = monday
    moving_clock.at(at(10, 30))
    run(db)
    with system_session(db) as session:
        first_pass = session.execute(sa.select(MetricPoint.computed_at).where(
            MetricPoint.bucket == at(9), MetricPoint.grain == "hour")).scalars().all()
    assert set(first_pass) == {at(10, 30)}

    moving_clock.at(at(11, 40))
    invites(db, harbour, "late@harbour.example")
    moving_clock.at(at(12, 10))
    tick = run(db)
    assert (tick.since, tick.as_of) == (at(10, 29), at(12, 9))
    assert (tick.hours, tick.days) == ((at(11),), (DAY,))

    assert day_figures(db, "platform", at(11), "hour") == {("invitations_sent", ""): 1}
    assert day_figures(db, scope_of(db, harbour.tenant.id))[("invitations_sent", "")] == 2
    assert day_figures(db, "platform")[("invitations_sent", "")] == 3
    with system_session(db) as session:
        untouched = session.execute(sa.select(MetricPoint.computed_at).where(
            MetricPoint.bucket == at(9), MetricPoint.grain == "hour")).scalars().all()
    assert untouched == first_pass  # the 9 o'clock points were not even rewritten


def test_ticks_within_one_hour_move_only_the_figures_they_touch(db, monday, moving_clock):
    """Two ticks in the 11 o'clock hour, each with activity of its own in Harbour: the second
    recounts only Harbour's invitations, yet every figure of the day matches a full rollup."""
    harbour, _elm = monday
    moving_clock.at(at(10, 30))
    run(db)
    moving_clock.at(at(11, 5))
    client_signs_up(db, harbour, "wren@harbour.example")
    moving_clock.at(at(11, 10))
    run(db)
    moving_clock.at(at(11, 20))
    invites(db, harbour, "late@harbour.example")
    moving_clock.at(at(11, 30))
    second = run(db)
    assert second.hours == (at(11),)

    harbour_scope = scope_of(db, harbour.tenant.id)
    with system_session(db) as session:
        signups_written = session.execute(sa.select(MetricPoint.computed_at).where(
            MetricPoint.scope == harbour_scope, MetricPoint.metric == "signups",
            MetricPoint.dimension == "client", MetricPoint.grain == "day")).scalar_one()
    assert signups_written == at(11, 10)  # not touched by the second tick
    after_ticks = day_figures(db, harbour_scope)
    assert after_ticks[("signups", "client")] == 3
    assert after_ticks[("invitations_sent", "")] == 2
    platform_after_ticks = day_figures(db, "platform")

    run(db, full=True)
    assert day_figures(db, harbour_scope) == after_ticks
    assert day_figures(db, "platform") == platform_after_ticks


def test_a_person_counted_in_an_hour_by_one_tick_is_not_counted_again_by_the_next(
        db, monday, moving_clock):
    """Walker completed onboarding at 10:05; new terms reopen it at 10:40 and Walker accepts
    them at 10:50. The tick at 11:00 recounts the 10 o'clock hour, where Walker already counted:
    Harbour's day still has two completions (one a person per hour), as a full rollup finds."""
    harbour, _elm = monday
    walker = _account(db, "walker@harbour.example")
    moving_clock.at(at(10, 30))
    run(db)
    moving_clock.at(at(10, 40))
    _reopen(db, walker)
    moving_clock.at(at(10, 45))
    run(db)
    moving_clock.at(at(10, 50))
    with UnitOfWork(db, tenant=TenantContext.of(harbour.tenant.id)) as uow:
        from core.onboarding import service as onboarding

        onboarding.move(uow, walker.id, Stage.COMPLETED,
                        values={"accept_terms": True, "accept_privacy": True})
        uow.commit()
    moving_clock.at(at(11))
    assert run(db).hours == (at(10),)

    harbour_scope = scope_of(db, harbour.tenant.id)
    after_ticks = day_figures(db, harbour_scope)
    assert after_ticks[("onboarding_completed", "client")] == 2
    assert after_ticks[("onboarding_steps", "client:TERMS")] == 2
    assert day_figures(db, "platform", at(10), "hour")[("onboarding_completed", "client")] == 1
    platform_after_ticks = day_figures(db, "platform")
    run(db, full=True)
    assert day_figures(db, harbour_scope) == after_ticks
    assert day_figures(db, "platform") == platform_after_ticks


def _account(db, email: str) -> Account:
    with system_session(db) as session:
        return session.execute(sa.select(Account).where(
            Account.display_name == email)).scalar_one()


def _reopen(db, account: Account) -> None:
    """New terms: the account's completed onboarding goes back to its terms stage."""
    from core.onboarding import service as onboarding

    with UnitOfWork(db, tenant=TenantContext.of(account.tenant_id)) as uow:
        progress = onboarding.of_account(uow.session, account.id)
        progress.terms_version = "an older version"
        assert onboarding.reopen_if_outdated(uow, progress) == Stage.TERMS
        uow.commit()


def test_sign_ins_age_out_of_their_windows_and_ticks_agree_with_a_full_rollup(
        db, settings, monday, moving_clock):
    harbour, elm = monday
    moving_clock.at(at(10, 30))
    run(db)
    moving_clock.at(at(10, 30, days=1))  # a day and a quarter of an hour after the sign-ins
    run(db)
    with system_session(db) as session:
        tuesday = read.figures(session)
        harbour_tuesday = read.figures(session, tenant_id=harbour.tenant.id)
    assert tuesday.active_people == {"1d": {"admin": 0, "client": 0, "therapist": 0},
                                     "7d": {"admin": 0, "client": 1, "therapist": 1},
                                     "30d": {"admin": 0, "client": 1, "therapist": 1}}
    assert harbour_tuesday.active_people["7d"] == {"client": 0, "therapist": 1}

    moving_clock.at(at(12, days=20))
    logs_in(db, settings, elm.therapist_email)
    moving_clock.at(at(10, 30, days=31))  # Harbour's therapist last signed in 31 days ago
    run(db)
    with system_session(db) as session:
        month = read.figures(session)
        harbour_month = read.figures(session, tenant_id=harbour.tenant.id)
    assert month.active_people["30d"] == {"admin": 0, "client": 0, "therapist": 1}
    assert month.active_people["7d"] == {"admin": 0, "client": 0, "therapist": 0}
    assert (month.active_practices, harbour_month.active_practices) == (1, 0)

    run(db, full=True)
    with system_session(db) as session:
        assert read.figures(session) == month
        assert read.figures(session, tenant_id=harbour.tenant.id) == harbour_month
        assert read.figures(session, tenant_id=elm.tenant.id).active_practices == 1


def test_a_full_rollup_counts_each_account_by_its_last_sign_in_up_to_as_of(
        db, settings, monday, moving_clock):
    """The full rollup counts accounts by the last sign-in each keeps; one that signed in again
    after as_of (within the rollup's lag) counts by its sign-in before, and one whose first
    sign-in came after as_of not yet, exactly as the events say."""
    harbour, elm = monday
    moving_clock.at(at(10, 30))
    logs_in(db, settings, harbour.therapist_email)  # again: signed in at 10:15 too
    logs_in(db, settings, elm.therapist_email)  # for the first time
    with system_session(db) as session:
        stamped = dict(session.execute(sa.select(Account.id, Account.last_signed_in_at)).all())
        sign_ins = sa.select(Event.actor_account_id, sa.func.max(Event.occurred_at)).where(
            Event.type.in_(("USER_LOGIN", "ROLE_SWITCHED"))).group_by(Event.actor_account_id)
        last_events = dict(session.execute(sign_ins).all())
    assert {k: v for k, v in stamped.items() if v is not None} == last_events
    assert stamped[harbour.therapist.id] == at(10, 30)

    moving_clock.at(at(10, 30) + timedelta(seconds=30))  # as_of 10:29:30: between them
    run(db, full=True)
    with system_session(db) as session:
        figures = read.figures(session)
        harbour_figures = read.figures(session, tenant_id=harbour.tenant.id)
        elm_figures = read.figures(session, tenant_id=elm.tenant.id)
    assert figures.active_people["1d"] == {"admin": 0, "client": 1, "therapist": 1}
    assert harbour_figures.active_people["1d"] == {"client": 0, "therapist": 1}
    assert elm_figures.active_people["1d"] == {"client": 1, "therapist": 0}

    moving_clock.at(at(10, 40))
    run(db)  # the tick moves the levels by the events since: Elm's therapist comes in
    with system_session(db) as session:
        ticked = read.figures(session)
    assert ticked.active_people["1d"] == {"admin": 0, "client": 1, "therapist": 2}
    run(db, full=True)
    with system_session(db) as session:
        assert read.figures(session) == ticked


def test_a_crash_between_families_is_repaired_by_the_next_run(db, settings, monday, moving_clock,
                                                              monkeypatch):
    harbour, elm = monday
    moving_clock.at(at(10, 30))
    run(db)
    before = all_points(db)
    moving_clock.at(at(11, 40))
    invites(db, harbour, "late@harbour.example")
    logs_in(db, settings, elm.therapist_email)

    def crash(plan):
        raise RuntimeError("worker lost mid-run")

    families = rollup.FAMILIES
    monkeypatch.setattr(rollup, "FAMILIES", (*families[:6], crash, *families[6:]))
    moving_clock.at(at(12, 10))
    with pytest.raises(RuntimeError, match="mid-run"):
        run(db)
    assert all_points(db) == before  # the families before the crash left nothing behind
    with system_session(db) as session:
        assert session.get(MetricRollup, rollup.WATERMARK).as_of == at(10, 29)

    monkeypatch.setattr(rollup, "FAMILIES", families)
    moving_clock.at(at(12, 15))
    repaired = run(db)
    assert (repaired.since, repaired.hours) == (at(10, 29), (at(11),))
    with system_session(db) as session:
        after_tick = read.figures(session)
        elm_after_tick = read.figures(session, tenant_id=elm.tenant.id)
    assert after_tick.active_people["1d"]["therapist"] == 2
    assert elm_after_tick.active_people["1d"] == {"client": 1, "therapist": 1}
    assert day_figures(db, "platform")[("invitations_sent", "")] == 3
    run(db, full=True)
    with system_session(db) as session:
        assert read.figures(session) == after_tick


def test_reopened_onboarding_counts_as_not_done_again(db, monday, moving_clock):
    """Completed people whose set-up reopens (new terms) leave the done count, incrementally."""
    harbour, _elm = monday
    moving_clock.at(at(10, 30))
    run(db)
    moving_clock.at(at(11))
    _reopen(db, harbour.client)
    moving_clock.at(at(11, 10))
    run(db)
    with system_session(db) as session:
        harbour_now = read.figures(session, tenant_id=harbour.tenant.id)
    assert harbour_now.completion_rate_by_role == {"client": 0.5, "therapist": 1.0}
    run(db, full=True)
    with system_session(db) as session:
        assert read.figures(session, tenant_id=harbour.tenant.id) == harbour_now


def test_a_first_rollup_just_after_midnight_counts_the_day_before(db, monday, moving_clock):
    """Monday's activity, and the platform's first rollup at 00:02 on Tuesday: Monday's
    sign-ups are counted (a first rollup starts at the first account's day), not lost."""
    moving_clock.at(at(0, 2, days=1))
    report = run(db)
    assert report.days[0] == DAY
    assert day_figures(db, "platform")[("signups", "client")] == 4


def test_a_first_rollup_reaches_back_at_most_the_longest_period_shown(db, monday, moving_clock):
    moving_clock.at(at(12, 0, days=200))
    report = run(db)
    assert report.days[0] == DAY + timedelta(days=200) - rollup.BACKFILL
    assert len(report.days) == rollup.BACKFILL.days + 1
