"""Every check of /api/health, in one table, over the process's services: the web tier runs them
for a probe, the workers every minute for the history (core.monitoring.history).

What differs between processes (how to reach the broker, who heard the workers) comes in as two
functions; the rest is the services the composition root built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa

from core.audit.sink import lag as sink_lag
from core.config import Settings
from core.db import rls_bypass_reason
from core.events.outbox import backlog
from core.health import Warn
from core.monitoring import checks
from core.scoping import crossing_tenants
from core.services import Services

BACKLOG_WARN_SECONDS = 60
SINK_LAG_WARN_SECONDS = 300
# Without these nothing works: no page, no log-in, or code that does not fit the schema.
CRITICAL = frozenset({"database", "auth", "migrations"})
READY = ("database", "migrations")
NAMES = ("database", "auth", "storage", "cache", "broker", "workers", "scheduler", "outbox",
         "migrations", "audit_sink")


@dataclass
class Probes:
    settings: Settings
    services: Services
    broker_status: Callable[[], str]  # raises when the broker cannot be reached
    alive_workers: Callable[[], list[str]]
    # Whether the role skips row-level security: asked once per process (pass the same list).
    rls_bypass: list[str | None] = field(default_factory=list)

    def table(self, names: tuple[str, ...] | None = None) -> dict[str, Callable[[], str]]:
        every: dict[str, Callable[[], str]] = {
            "database": self.database, "auth": self.auth, "storage": self.storage,
            "cache": self.cache, "broker": self.broker_status, "workers": self.workers,
            "scheduler": self.scheduler, "outbox": self.outbox, "migrations": self.migrations,
            "audit_sink": self.audit_sink,
        }
        return {name: every[name] for name in NAMES if names is None or name in names}

    def database(self) -> str:
        db = self.services.db
        with db.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        if not self.rls_bypass:  # a connection's role does not change while the process runs
            self.rls_bypass.append(rls_bypass_reason(db.engine))
        if self.rls_bypass[0]:
            raise Warn(f"{db.dialect}: {self.rls_bypass[0]}; row-level security does not apply")
        return db.dialect

    def auth(self) -> str:
        return checks.auth(self.services.db.engine, self.services.cache,
                           self.settings.secret_key)

    def storage(self) -> str:
        return checks.storage(self.services.files)

    def cache(self) -> str:
        self.services.cache.ping()
        return "redis" if self.settings.redis_url else "in-process"

    def workers(self) -> str:
        alive = self.alive_workers()
        if not alive:
            raise Warn("no worker has reported in the last 15 s; side effects are queued, not run")
        return f"{len(alive)} worker process(es) alive"

    def scheduler(self) -> str:
        return checks.scheduler(self.services.cache)

    def outbox(self) -> str:
        with self.services.db.session() as session:
            state = backlog(session)
        detail = f"{state.undispatched} undispatched, {state.unaudited} unaudited"
        age = state.oldest_age_seconds
        if age is not None:
            detail += f", oldest {age:.0f}s"
            if age > BACKLOG_WARN_SECONDS:
                raise Warn(detail)
        return detail

    def migrations(self) -> str:
        return checks.migrations(self.services.db.engine)

    def audit_sink(self) -> str:
        """How far the external audit sink is behind (AUDIT_SINK_URL)."""
        if not self.settings.audit_sink_url:
            return "off (no AUDIT_SINK_URL)"
        with self.services.db.session() as session, crossing_tenants(session):
            behind = sink_lag(session)
        detail = f"{behind.entries} entries behind in {behind.chains} chain(s)"
        if behind.oldest_age_seconds is not None:
            detail += f", oldest {behind.oldest_age_seconds:.0f}s"
            if behind.oldest_age_seconds > SINK_LAG_WARN_SECONDS:
                raise Warn(detail)
        return detail
