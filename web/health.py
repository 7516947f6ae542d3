"""GET /api/health (dependencies, bounded by a timeout) and /api/health/live (process only)."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, jsonify

from core.audit.sink import lag as sink_lag
from core.db import rls_bypass_reason
from core.events.outbox import backlog
from core.health import UNHEALTHY, HealthChecks, Warn
from core.scoping import crossing_tenants
from web.context import background, services, settings
from web.security import plain_http_allowed

blueprint = Blueprint("health", __name__, url_prefix="/api/health")

BACKLOG_WARN_SECONDS = 60
CRITICAL = {"database"}


def _database() -> str:
    db = services().db
    with db.engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))
    bypass = _rls_bypass_reason()
    if bypass:
        raise Warn(f"{db.dialect}: {bypass}; row-level security does not apply")
    return db.dialect


def _rls_bypass_reason() -> str | None:
    """Asked once per process: a connection's role does not change while it runs."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if "rls_bypass" not in app.extensions:
        app.extensions["rls_bypass"] = rls_bypass_reason(services().db.engine)
    reason: str | None = app.extensions["rls_bypass"]
    return reason


def _cache() -> str:
    cache = services().cache
    cache.ping()
    return "redis" if settings().redis_url else "in-process"


def _broker() -> str:
    return background().broker_status()


def _workers() -> str:
    alive = background().alive_workers()
    if not alive:
        raise Warn("no worker has reported in the last 15 s; side effects are queued, not run")
    return f"{len(alive)} worker process(es) alive"


def _outbox() -> str:
    with services().db.session() as session:
        state = backlog(session)
    detail = f"{state.undispatched} undispatched, {state.unaudited} unaudited"
    age = state.oldest_age_seconds
    if age is not None:
        detail += f", oldest {age:.0f}s"
        if age > BACKLOG_WARN_SECONDS:
            raise Warn(detail)
    return detail


SINK_LAG_WARN_SECONDS = 300


def _audit_sink() -> str:
    """How far the external audit sink is behind (AUDIT_SINK_URL)."""
    if not settings().audit_sink_url:
        return "off (no AUDIT_SINK_URL)"
    with services().db.session() as session, crossing_tenants(session):
        behind = sink_lag(session)
    detail = f"{behind.entries} entries behind in {behind.chains} chain(s)"
    if behind.oldest_age_seconds is not None:
        detail += f", oldest {behind.oldest_age_seconds:.0f}s"
        if behind.oldest_age_seconds > SINK_LAG_WARN_SECONDS:
            raise Warn(detail)
    return detail


def _checks() -> dict[str, Callable[[], str]]:
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def in_app(check: Callable[[], str]) -> Callable[[], str]:
        def run() -> str:
            with app.app_context():
                return check()

        return run

    return {name: in_app(fn) for name, fn in (
        ("database", _database), ("cache", _cache), ("broker", _broker),
        ("workers", _workers), ("outbox", _outbox), ("audit_sink", _audit_sink),
    )}


def _health_checks() -> HealthChecks:
    """One per app: it remembers which of this app's checks are still running."""
    checks: HealthChecks = current_app.extensions.setdefault("health_checks", HealthChecks())
    return checks


@blueprint.get("")
@plain_http_allowed
def health() -> tuple[Response, int]:
    status, results = _health_checks().run(_checks(), critical=CRITICAL,
                                           timeout=settings().health_timeout_seconds)
    body = {"status": status, "checks": {name: r.as_dict() for name, r in results.items()}}
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response, 503 if status == UNHEALTHY else 200


@blueprint.get("/live")
@plain_http_allowed
def live() -> Response:
    response = jsonify({"status": "alive"})
    response.headers["Cache-Control"] = "no-store"
    return response
