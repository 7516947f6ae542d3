"""Health history: the workers record every check each minute; /admin/health shows each part's
last 24 hours and uptime; an outage alerts the admins once, and once more when it ends."""

from __future__ import annotations

from datetime import timedelta
from email import message_from_bytes
from email.policy import default

import pytest
import sqlalchemy as sa

from core import clock
from core.adapters.files import LocalFileStore
from core.adapters.mail import MemoryMailer
from core.events.models import DeadLetter
from core.health import CheckResult
from core.identity import signup
from core.mail.allowance import recipient_hash
from core.mail.models import MailLog
from core.monitoring import history
from core.monitoring.checks import beat_scheduler
from core.monitoring.models import HealthIncident, HealthSample
from core.notifications.models import Notification
from core.scoping import TenantContext, system_session
from core.uow import UnitOfWork
from scheduler.jobs import JOBS
from tests.support.factories import practice
from tests.support.flows import PASSWORD, login

ADMIN_EMAIL = "operator@platform.example"


class UnwritableStore(LocalFileStore):
    def writer(self, key):
        raise PermissionError(f"read-only file system: {key}")


@pytest.fixture
def admin(db):
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        account = signup.create_admin(uow, ADMIN_EMAIL, PASSWORD)
        uow.commit()
    return account


def _sample(app, worker) -> None:
    """What the scheduler's `health-sample` job does each minute: enqueue the actor (and the
    scheduler, alive, says so)."""
    beat_scheduler(app.extensions["services"].cache, "embedded", 60)
    worker.side.enqueue("record_health")
    worker.drain()


def _subject(mail) -> str:
    return str(message_from_bytes(mail.data, policy=default)["Subject"])


def _alerts(db, admin) -> list[Notification]:
    with system_session(db) as session:
        return list(session.execute(sa.select(Notification).where(
            Notification.account_id == admin.id, Notification.kind == "health_incident")
            .order_by(Notification.created_at)).scalars())


def test_the_scheduler_samples_health_every_minute() -> None:
    [job] = [job for job in JOBS if job.id == "health-sample"]
    assert job.actor == "record_health" and job.period_seconds == 60


def test_an_outage_alerts_the_admins_once_and_once_more_when_it_ends(app, db, admin,
                                                                        worker) -> None:
    services = app.extensions["services"]
    services.mailer = worker.side.runtime.services.mailer = MemoryMailer()
    healthy_store = services.files
    services.files = UnwritableStore(healthy_store.root)
    for _minute in range(3):  # three samples while the store is failing: one incident
        _sample(app, worker)
    alerts = _alerts(db, admin)
    assert [a.title for a in alerts] == ["Storage is failing"]
    assert "read-only file system" in alerts[0].body
    assert alerts[0].link == "/admin/health"
    mails = list(services.mailer.sent.values())
    assert [_subject(m) for m in mails] == ["Practice Platform: Storage is failing"]
    assert [m.envelope_to for m in mails] == [ADMIN_EMAIL]
    services.files = healthy_store
    _sample(app, worker)
    _sample(app, worker)
    assert [a.title for a in _alerts(db, admin)] == ["Storage is failing",
                                                     "Storage has recovered"]
    assert sorted(_subject(m) for m in services.mailer.sent.values()) == [
        "Practice Platform: Storage has recovered", "Practice Platform: Storage is failing"]
    with system_session(db) as session:
        [incident] = session.execute(sa.select(HealthIncident).where(
            HealthIncident.part == "storage")).scalars()
        assert incident.resolved_at is not None
        samples = session.execute(sa.select(HealthSample.status).where(
            HealthSample.check == "storage").order_by(HealthSample.taken_at)).scalars().all()
    assert samples == ["fail", "fail", "fail", "pass", "pass"]
    # Each e-mail counted against the admin's allowance, committed with its run's "done".
    with system_session(db) as session:
        counted = session.execute(sa.select(MailLog.kind, MailLog.status).where(
            MailLog.recipient_hash == recipient_hash(ADMIN_EMAIL))).all()
    assert counted == [("health_incident", "sent")] * 2


def test_dead_letters_open_an_incident(app, db, admin, worker) -> None:
    with system_session(db) as session:
        session.add(DeadLetter(message_id="m-1", queue="email", actor="send_welcome_email",
                               attempts=10, message={}, failed_at=clock.now()))
        session.commit()
    _sample(app, worker)
    _sample(app, worker)
    assert [a.title for a in _alerts(db, admin)] == ["Dead letters is failing"]
    assert "1 dead letter(s) waiting" in _alerts(db, admin)[0].body


def test_samples_past_seven_days_are_pruned(db) -> None:
    now = clock.now()
    ok = {"database": CheckResult("pass", 1.0, "postgresql")}
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        history.record(uow, ok, now=now - timedelta(days=8))
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        recorded = history.record(uow, ok, now=now)
    assert recorded.pruned == 1
    with system_session(db) as session:
        assert session.execute(sa.select(sa.func.count()).select_from(HealthSample)
                               ).scalar_one() == 1


def test_the_strip_and_uptime_of_the_last_day(db) -> None:
    now = clock.now()
    for minutes, status in ((90, "pass"), (60, "fail"), (30, "pass"), (5, "pass")):
        with UnitOfWork(db, tenant=TenantContext.system()) as uow:
            history.record(uow, {"cache": CheckResult(status, 1.0, "x")},
                           now=now - timedelta(minutes=minutes))
    with system_session(db) as session:
        [cache, scheduler] = history.strips(session, ("cache", "scheduler"), now=now)
    assert cache.uptime == 0.75 and cache.failures == 1 and cache.latest == "pass"
    assert "fail" in [slot.status for slot in cache.slots]
    assert len(cache.slots) == history.SLOTS
    assert scheduler.uptime is None and scheduler.summary == "no samples in the last 24 hours"


def test_the_admin_page_shows_now_and_the_last_day(app, db, admin) -> None:
    now = clock.now()
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        history.record(uow, {"database": CheckResult("pass", 1.0, "postgresql")},
                       now=now - timedelta(minutes=3))
    client = app.test_client()
    assert login(client, ADMIN_EMAIL).status_code == 302
    html = client.get("/admin/health").get_data(as_text=True)
    assert 'data-testid="uptime-database">100.0 %<' in html
    assert "Database: 100.0 % up over the last 24 hours, no failures" in html
    assert 'data-testid="checks-now"' in html and "(critical)" in html
    assert 'href="/admin/health"' in html


def test_others_find_no_health_page(app, db) -> None:
    harbour = practice(db, "Harbour", slug_hint="harbour")
    client = app.test_client()
    assert login(client, harbour.therapist_email).status_code == 302
    assert client.get("/admin/health").status_code == 404
    assert app.test_client().get("/admin/health").status_code == 404
