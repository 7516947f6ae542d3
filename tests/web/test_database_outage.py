"""The database is down: pages and the API say "temporarily unavailable" (503, Retry-After),
logged as one warning line; the liveness probe touches neither the database nor the cache."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from assembly import web_process
from core.caching import CachedRegions
from core.db import Database
from core.services import Services
from tests.conftest import free_port, make_settings
from tests.support import factories
from tests.support.flows import login
from web.errors import RETRY_AFTER_SECONDS


@pytest.fixture
def dead_database() -> Iterator[Database]:
    database = Database(f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none")
    yield database
    database.dispose()


class Untouchable:
    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"{name} was used")


def _app_on(database: Database, instance_dir, *, cache: object | None = None):
    settings = make_settings(database.url, instance_dir)
    services = Services.build(settings, db=database)
    if cache is not None:
        services.cache = cache  # type: ignore[assignment]
        services.regions = CachedRegions(cache)  # type: ignore[arg-type]
    return web_process(settings, services=services)


def _with_session_cookie(app):
    client = app.test_client()
    with client.session_transaction() as cookie:
        cookie["sid"] = "a-session-id-from-before-the-outage"
    return client


def _assert_unavailable(response) -> None:
    assert response.status_code == 503
    assert response.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)


def test_a_page_needing_the_database_is_a_503_page_not_a_500(dead_database, instance_dir,
                                                             caplog) -> None:
    client = _with_session_cookie(_app_on(dead_database, instance_dir))
    with caplog.at_level(logging.WARNING):
        response = client.get("/dashboard")
    _assert_unavailable(response)
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "Temporarily unavailable" in page
    assert "unexpected error" not in page
    logged = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [(r.levelname, r.exc_info) for r in logged] == [("WARNING", None)]
    assert "database unavailable on GET /dashboard" in logged[0].getMessage()


def test_an_api_call_needing_the_database_is_a_503_json_error(dead_database,
                                                              instance_dir) -> None:
    client = _with_session_cookie(_app_on(dead_database, instance_dir))
    response = client.get("/api/onboarding/progress")
    _assert_unavailable(response)
    assert response.get_json()["error"]["code"] == "unavailable"


def test_live_touches_neither_database_nor_cache_even_with_a_session_cookie(
    dead_database, instance_dir
) -> None:
    client = _with_session_cookie(_app_on(dead_database, instance_dir, cache=Untouchable()))
    response = client.get("/api/health/live")
    assert response.status_code == 200
    assert response.get_json() == {"status": "alive"}


def test_a_dashboard_whose_database_goes_away_is_a_503_page(app, db, dead_database) -> None:
    practice = factories.practice(db, "Outage Practice", slug_hint="outage")
    client = app.test_client()
    assert login(client, practice.therapist_email).status_code == 302
    assert client.get("/").status_code == 200  # the session is now in the cache
    app.extensions["services"].db = dead_database  # the database goes down
    response = client.get("/therapist")
    _assert_unavailable(response)
    assert "Temporarily unavailable" in response.get_data(as_text=True)
