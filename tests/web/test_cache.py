"""The cache: never stale after a commit, on any process; one recomputation per key at a time;
hit, miss and invalidation counts for admins."""

from __future__ import annotations

import threading

import pytest

from core.adapters.cache import MemoryCache, RedisCache
from core.caching import ROLES, CachedRegions
from core.identity.models import Account
from core.scoping import system_session
from tests.support.apps import make_app
from tests.support.factories import practice
from tests.support.flows import (
    PASSWORD,
    PERSONAL_INFO,
    PROFESSIONAL_INFO,
    csrf_token,
    login,
    post_form,
)
from tests.support.processes import wait_until


@pytest.fixture
def two_processes(settings, db, redis_url):
    """Two web processes (apps with their own services) on one database and one Redis."""
    shared = settings.with_overrides(redis_url=redis_url)
    return make_app(shared, db), make_app(shared, db)


def test_a_role_granted_with_the_cli_shows_in_an_open_sessions_switcher(two_processes, db):
    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    web, operator = two_processes
    browser = web.test_client()
    login(browser, harbour.therapist_email)
    before = browser.get("/therapist").get_data(as_text=True)
    assert 'name="role"' not in before  # one role: no switcher yet

    granted = operator.test_cli_runner().invoke(
        args=["users", "create-admin", harbour.therapist_email, "--send-link"])
    assert granted.exit_code == 0, granted.output

    page = browser.get("/therapist").get_data(as_text=True)
    assert '<option value="admin"' in page and '<option value="therapist"' in page


def test_two_processes_never_serve_a_value_older_than_the_last_commit(two_processes, db):
    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    one, other = two_processes
    writer, reader = one.test_client(), other.test_client()
    login(writer, harbour.therapist_email)
    login(reader, harbour.therapist_email)
    assert "new.client@harbour.example" not in reader.get("/therapist").get_data(as_text=True)

    sent = post_form(writer, "/therapist/invitations", {"email": "new.client@harbour.example"},
                     page="/therapist")
    assert sent.status_code == 302
    assert "new.client@harbour.example" in reader.get("/therapist").get_data(as_text=True)

    with system_session(db) as session:  # a change made outside any web process
        session.get(Account, harbour.client.id).display_name = "Renamed By Support"
        session.commit()
    assert "Renamed By Support" in reader.get("/therapist").get_data(as_text=True)


@pytest.fixture(params=["memory", "redis"])
def regions(request, db):
    cache = MemoryCache() if request.param == "memory" else RedisCache(
        request.getfixturevalue("redis_url"))
    cached = CachedRegions(cache)
    cached.invalidate_on_commit(db)
    return cached


def _display_name(db, account_id) -> str:
    with system_session(db) as session:
        return session.get(Account, account_id).display_name


def _rename(db, account_id, name: str) -> None:
    with system_session(db) as session:
        session.get(Account, account_id).display_name = name
        session.commit()


def test_a_value_read_before_a_commit_is_not_stored_after_it(regions, db):
    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    key = ROLES.key(harbour.therapist.identity_id)
    account_id = harbour.therapist.id

    def read_then_someone_commits() -> str:
        name = _display_name(db, account_id)  # the value as it was ...
        _rename(db, account_id, "Renamed Meanwhile")  # ... a commit invalidates the key ...
        return name  # ... and the old value arrives after it

    assert regions.get(key, read_then_someone_commits) == "Therapist of Harbour Counselling"
    assert regions.get(key, lambda: _display_name(db, account_id)) == "Renamed Meanwhile"
    assert regions.get(key, lambda: "not asked: the new value is cached") == "Renamed Meanwhile"
    counts = regions.counts()["roles"]
    assert (counts["hits"], counts["misses"]) == (1, 2)
    assert counts["invalidations"] >= 1


def test_one_recomputation_per_key_at_a_time(regions, db, monkeypatch):
    # Long enough that no reader gives up waiting on a busy machine: what is checked is that
    # one reader computes while the others wait, not how long they would wait.
    monkeypatch.setattr(regions, "wait_seconds", 30.0)
    key = ROLES.key("stampede")
    release = threading.Event()
    computed: list[int] = []

    def slow_read() -> str:
        computed.append(1)
        release.wait(10)
        return "the value"

    results: list[str] = []
    readers = [threading.Thread(target=lambda: results.append(regions.get(key, slow_read)))
               for _ in range(8)]
    for reader in readers:
        reader.start()
    wait_until(lambda: regions.counts()["roles"]["waits"] == 7, 10,
               "seven readers waiting for the first one's value")
    release.set()
    for reader in readers:
        reader.join(10)
    assert computed == [1]
    assert results == ["the value"] * 8


def _save_draft(browser, stage: str, data: dict):
    version = browser.get("/api/onboarding/progress").get_json()["version"]
    return browser.put("/api/onboarding/progress",
                       json={"stage": stage, "data": data, "version": version},
                       headers={"X-CSRFToken": csrf_token(browser, "/")})


def test_a_clients_personal_details_keep_the_practice_dashboard_cached_specialties_do_not(
        app, db):
    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    regions = app.extensions["services"].regions
    therapist, client = app.test_client(), app.test_client()
    login(therapist, harbour.therapist_email)
    login(client, harbour.client_email)
    assert "Grief and loss" not in client.get("/client").get_data(as_text=True)
    therapist.get("/therapist")
    invalidated = regions.counts()["practice-homes"]["invalidations"]

    saved = _save_draft(client, "PERSONAL_INFO", {**PERSONAL_INFO, "phone": "+44 20 7946 0001"})
    assert saved.status_code == 200
    # Nothing a practice's dashboards show changed: the therapist's stays cached.
    assert regions.counts()["practice-homes"]["invalidations"] == invalidated

    saved = _save_draft(therapist, "PROFESSIONAL_INFO",
                        {**PROFESSIONAL_INFO, "specialties": ["grief"]})
    assert saved.status_code == 200
    assert regions.counts()["practice-homes"]["invalidations"] == invalidated + 1
    assert "Grief and loss" in client.get("/client").get_data(as_text=True)


def test_admins_see_each_regions_hits_misses_and_invalidations(app, db):
    from core.identity.signup import create_admin
    from core.uow import UnitOfWork

    with UnitOfWork(db) as uow:
        create_admin(uow, "root@platform.example", PASSWORD)
        uow.commit()
    client = app.test_client()
    login(client, "root@platform.example")
    client.get("/admin")
    page = client.get("/admin").get_data(as_text=True)
    table = page.split('data-testid="cache-counts"', 1)[1].split("</table>", 1)[0]
    for region in ("sessions", "roles", "profiles", "onboarding"):
        assert f">{region}</td>" in table
    counts = app.extensions["services"].regions.counts()
    assert counts["sessions"]["hits"] >= 1 and counts["roles"]["misses"] >= 1
    assert sum(c["invalidations"] for c in counts.values()) >= 1  # the log-in's own changes



def test_what_a_request_read_ahead_is_forgotten_when_its_region_is_invalidated(regions):
    from core.caching import (
        PRACTICE_LIMITS,
        WholeRegion,
        begin_request_memo,
        end_request_memo,
        request_reads,
    )

    roles, limits = ROLES.key("ahead"), PRACTICE_LIMITS.key("ahead")
    regions.get_many([(roles, lambda: "roles"), (limits, lambda: {"per_minute": 100})])
    memo = begin_request_memo()
    try:
        assert regions.get_many([(roles, lambda: "not asked")],
                                along=[(limits, lambda: "not asked")]) == ["roles"]
        assert limits.value_key in request_reads()  # read ahead, not decoded yet
        regions.invalidate([WholeRegion(PRACTICE_LIMITS)])  # a plan's limits changed
        assert regions.get(limits, lambda: {"per_minute": 50}) == {"per_minute": 50}
    finally:
        end_request_memo(memo)
    assert regions.counts()["practice-limits"]["hits"] == 1  # the round trip that read ahead


def test_a_failed_recomputation_leaves_no_one_waiting(regions):
    key = ROLES.key("failing")

    def database_away() -> str:
        raise RuntimeError("the database did not answer")

    with pytest.raises(RuntimeError):
        regions.get(key, database_away)
    assert regions.get(key, lambda: "read again") == "read again"
    assert regions.counts()["roles"]["waits"] == 0


def test_an_entry_the_audit_worker_writes_shows_on_the_next_dashboard(platform):
    harbour = practice(platform.db, "Harbour Counselling", slug_hint="harbour")
    browser = platform.client()
    login(browser, harbour.therapist_email)
    platform.settle()
    before = browser.get("/therapist").get_data(as_text=True).count("Logged in")
    login(platform.client(), harbour.therapist_email)  # on another device
    platform.settle()  # the worker writes the audit entry and invalidates the activity
    after = browser.get("/therapist").get_data(as_text=True).count("Logged in")
    assert after == before + 1
