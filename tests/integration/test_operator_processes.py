"""The operator's view on the real processes: a scheduler process and a dramatiq worker process
on PostgreSQL + Redis roll up the figures that /api/metrics serves; a killed scheduler turns
/api/health degraded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from core import clock
from core.adapters.cache import build_cache
from core.identity import signup
from core.metrics import read
from core.metrics.models import MetricPoint
from core.scoping import TenantContext, system_session
from core.uow import UnitOfWork
from tests.conftest import DETAILS, make_settings
from tests.support.activity import logs_in
from tests.support.apps import make_app
from tests.support.factories import practice
from tests.support.flows import PASSWORD, login
from tests.support.processes import dramatiq_worker, platform_env, scheduler, wait_until

pytestmark = pytest.mark.integration

TICK_SECONDS = 2
ADMIN_EMAIL = "operator@platform.example"


def _as_of(db) -> datetime | None:
    with system_session(db) as session:
        return read.figures(session).as_of


def _points(db) -> dict[tuple, float]:
    with system_session(db) as session:
        return {(p.metric, p.scope, p.grain, p.bucket, p.dimension): p.value
                for p in session.execute(sa.select(MetricPoint)).scalars()}


@pytest.fixture
def processes(database_url, redis_url, tmp_path):
    started = []

    def start(**env_values: str):
        env = platform_env(DATABASE_URL=database_url, REDIS_URL=redis_url,
                           INSTANCE_PATH=str(tmp_path), **env_values)
        worker = dramatiq_worker(env, tmp_path / "worker.log")
        started.append(worker)
        wait_until(lambda: build_cache(redis_url).alive("workers"), 60, "worker heartbeat")
        leader = scheduler(env, tmp_path / "scheduler.log")
        started.append(leader)
        wait_until(lambda: "is now the leader" in leader.output(), 30, "scheduler leadership")
        return worker, leader

    yield start
    for process in reversed(started):
        process.stop()
    for process in started:
        assert "Traceback" not in process.output(), process.output()


def _web(db, database_url, redis_url, instance_dir):
    return make_app(make_settings(database_url, instance_dir, redis_url=redis_url,
                                  broker_url=redis_url), db)


def _client(app, email):
    client = app.test_client()
    assert login(client, email).status_code == 302
    return client


def test_activity_in_two_practices_gives_exact_figures(db, settings, database_url, redis_url,
                                                        instance_dir, processes, monkeypatch):
    # Activity a few minutes old: the rollup stops a minute behind the clock.
    monkeypatch.setattr(clock, "now", lambda: datetime.now(UTC) - timedelta(minutes=5))
    harbour = practice(db, "Harbour", slug_hint="harbour")
    elm = practice(db, "Elm", slug_hint="elm")
    logs_in(db, settings, harbour.client_email)
    logs_in(db, settings, harbour.therapist_email)
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        signup.create_admin(uow, ADMIN_EMAIL, PASSWORD)
        uow.commit()
    monkeypatch.undo()

    processes(METRICS_ROLLUP_SECONDS=str(TICK_SECONDS))
    wait_until(lambda: _as_of(db) is not None, 30, "the first rollup")
    app = _web(db, database_url, redis_url, instance_dir)
    admin = _client(app, ADMIN_EMAIL)
    first = admin.get("/api/metrics?days=7").get_json()
    assert first["as_of"] is not None and first["age_seconds"] >= 0
    assert first["figures"]["active_tenants"] == 1  # Elm: nobody signed in
    assert first["figures"]["active_users"] == 2
    assert first["figures"]["users_by_role"] == {"admin": 1, "client": 2, "therapist": 2}
    assert first["figures"]["onboarding_completion_rate"] == 1.0
    harbour_figures = admin.get(f"/api/metrics?tenant={harbour.tenant.id}").get_json()["figures"]
    assert harbour_figures["users_by_role"] == {"client": 1, "therapist": 1}
    assert harbour_figures["active_users"] == 2

    # A later rollup changes nothing that was already counted.
    points = _points(db)
    as_of = _as_of(db)
    wait_until(lambda: _as_of(db) > as_of, 30, "a later tick")
    later = _points(db)
    assert {key: later[key] for key in points} == points
    assert admin.get("/api/metrics?days=7").get_json()["figures"] == first["figures"]

    # A therapist sees its own practice's figures on its dashboard, and no platform figures.
    therapist = _client(app, harbour.therapist_email)
    assert therapist.get("/api/metrics").status_code == 404
    page = therapist.get("/therapist").get_data(as_text=True)
    assert 'data-testid="figure-clients">1<' in page
    assert 'data-testid="figure-active-clients">1<' in page
    elm_page = _client(app, elm.therapist_email).get("/therapist").get_data(as_text=True)
    assert 'data-testid="figure-active-clients">0<' in elm_page
    assert _client(app, harbour.client_email).get("/api/metrics").status_code == 404


def test_a_killed_scheduler_turns_health_degraded(db, database_url, redis_url, instance_dir,
                                                   processes):
    _worker, leader = processes(SCHEDULER_LOCK_TTL="3")  # a heartbeat every second
    client = _web(db, database_url, redis_url, instance_dir).test_client()

    def scheduler_check(wanted: str):
        response = client.get("/api/health", headers=DETAILS)
        check = response.get_json()["checks"]["scheduler"]
        return (response, check) if check["status"] == wanted else None

    wait_until(lambda: scheduler_check("pass"), 30, "the scheduler's heartbeat")
    leader.kill()
    # Dead once silent for two of its intervals (2 s here); a few seconds' slack for the probe.
    response, check = wait_until(lambda: scheduler_check("fail"), 10,  # type: ignore[misc]
                                 "the scheduler check failing")
    assert response.status_code == 200 and response.get_json()["status"] == "degraded"
    assert "was last heard" in check["detail"]
