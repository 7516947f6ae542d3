"""GET /api/health (every part, bounded by a timeout), /api/health/ready (database and schema,
for load balancers) and /api/health/live (the process only: it touches no backend).

The public answer gives each check's status and latency; the details (hosts, counts, errors)
go only to a platform admin's session or to `Authorization: Bearer $METRICS_TOKEN`."""

from __future__ import annotations

import hmac
from collections.abc import Callable

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, jsonify, request

from core.audit.sink import lag as sink_lag
from core.db import rls_bypass_reason
from core.events.outbox import backlog
from core.health import FAIL, UNHEALTHY, CheckResult, HealthChecks, Warn
from core.identity.models import Role
from core.monitoring import checks
from core.scoping import crossing_tenants
from web.context import background, services, settings
from web.security import plain_http_allowed

blueprint = Blueprint("health", __name__, url_prefix="/api/health")

BACKLOG_WARN_SECONDS = 60
# Without these nothing works: no page, no log-in, or code that does not fit the schema.
CRITICAL = {"database", "auth", "migrations"}
READY = ("database", "migrations")


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


def _auth() -> str:
    return checks.auth(services().db.engine, services().cache, settings().secret_key)


def _storage() -> str:
    return checks.storage(services().files)


def _scheduler() -> str:
    return checks.scheduler(services().cache)


def _migrations() -> str:
    return checks.migrations(services().db.engine)


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


CHECKS: tuple[tuple[str, Callable[[], str]], ...] = (
    ("database", _database), ("auth", _auth), ("storage", _storage), ("cache", _cache),
    ("broker", _broker), ("workers", _workers), ("scheduler", _scheduler), ("outbox", _outbox),
    ("migrations", _migrations), ("audit_sink", _audit_sink),
)


def _checks(names: tuple[str, ...] | None = None) -> dict[str, Callable[[], str]]:
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def in_app(check: Callable[[], str]) -> Callable[[], str]:
        def run() -> str:
            with app.app_context():
                return check()

        return run

    return {name: in_app(fn) for name, fn in CHECKS if names is None or name in names}


def _health_checks() -> HealthChecks:
    """One per app: it remembers which of this app's checks are still running."""
    checks: HealthChecks = current_app.extensions.setdefault("health_checks", HealthChecks())
    return checks


def run_checks(names: tuple[str, ...] | None = None) -> tuple[str, dict[str, CheckResult]]:
    """Every check (or those named), side by side, within HEALTH_TIMEOUT_MS."""
    critical = CRITICAL if names is None else set(names)
    return _health_checks().run(_checks(names), critical=critical,
                                timeout=settings().health_timeout_seconds)


def bearer_matches(token: str) -> bool:
    """`Authorization: Bearer <token>` with the configured token (never with an empty one)."""
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode())


def _admin_asking(results: dict[str, CheckResult]) -> bool:
    """A platform admin's session (health paths look sessions up only here, and only when the
    database answered: a probe must never wait on it)."""
    from web import authn

    if not authn.has_session_cookie() or results.get("database", CheckResult(FAIL, 0, "")
                                                        ).status == FAIL:
        return False
    try:
        authn.load_session_view()
    except Exception:  # no details rather than no answer
        return False
    view = authn.current()
    return view is not None and view.role == Role.ADMIN


def _answer(status: str, results: dict[str, CheckResult]) -> tuple[Response, int]:
    detailed = bearer_matches(settings().metrics_token) or _admin_asking(results)
    body = {"status": status, "checks": {
        name: r.as_dict() if detailed else {"status": r.status, "latency_ms": r.latency_ms}
        for name, r in results.items()}}
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response, 503 if status == UNHEALTHY else 200


@blueprint.get("")
@plain_http_allowed
def health() -> tuple[Response, int]:
    return _answer(*run_checks())


@blueprint.get("/ready")
@plain_http_allowed
def ready() -> tuple[Response, int]:
    """For load balancers: this process can serve (the database answers, the schema fits)."""
    return _answer(*run_checks(READY))


@blueprint.get("/live")
@plain_http_allowed
def live() -> Response:
    response = jsonify({"status": "alive"})
    response.headers["Cache-Control"] = "no-store"
    return response
