"""Core use cases on the in-memory adapters: no Flask, no network, no broker.

The database is a SQLite file built once per run by the migrations (the embedded default, so
these tests run the same on a bare machine and in CI); mail, cache, notifications and webhooks
are the adapters' in-memory versions. Everything a use case does is checked through what it
left behind: rows, events, e-mails.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.adapters.cache import MemoryCache
from core.adapters.mail import MemoryMailer
from core.adapters.notifications import LocalBus
from core.adapters.webhooks import MemoryWebhookSender
from core.caching import CachedRegions
from core.config import Settings
from core.db import Database
from core.events.models import Event
from core.scoping import TenantContext, system_session
from core.services import Services
from core.uow import UnitOfWork
from tests.conftest import delete_all_rows, make_settings, reset_schema


@pytest.fixture(scope="session")
def core_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path_factory.mktemp('core') / 'core.db'}"
    reset_schema(url)
    database = Database(url)
    yield database
    database.dispose()


@pytest.fixture
def db(core_database: Database) -> Iterator[Database]:
    yield core_database
    delete_all_rows(core_database)


@pytest.fixture
def settings(db: Database, instance_dir: Path) -> Settings:
    return make_settings(db.url, instance_dir)


@pytest.fixture
def cache() -> MemoryCache:
    return MemoryCache()


@pytest.fixture
def services(settings: Settings, db: Database, cache: MemoryCache) -> Services:
    return Services(settings=settings, db=db, cache=cache, mailer=MemoryMailer(),
                    notifications=LocalBus(), webhooks=MemoryWebhookSender())


@pytest.fixture
def regions(db: Database, cache: MemoryCache) -> CachedRegions:
    """The cache's regions on the memory cache, invalidated by the test database's commits."""
    cached = CachedRegions(cache)
    cached.invalidate_on_commit(db)
    return cached


@pytest.fixture
def unit(db: Database) -> Iterator[UnitOfWork]:
    """A unit of work that acts for the platform (as a command or a worker does)."""
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        yield uow


def events_of(db: Database, type_: str) -> list[Event]:
    with system_session(db) as session:
        return list(session.execute(sa.select(Event).where(Event.type == type_)).scalars())
