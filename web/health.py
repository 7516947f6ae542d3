"""GET /api/health (every part, bounded by a timeout), /api/health/ready (database and schema,
for load balancers) and /api/health/live (the process only: it touches no backend).

The public answer gives each check's status and latency; the details (hosts, counts, errors)
go only to a platform admin's session or to `Authorization: Bearer $METRICS_TOKEN`."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from flask import Blueprint, Response, current_app, jsonify, request

from core.health import FAIL, UNHEALTHY, CheckResult, HealthChecks
from core.identity.models import Role
from core.monitoring.probes import CRITICAL, READY, Probes
from web.context import background, services, settings
from web.security import plain_http_allowed

blueprint = Blueprint("health", __name__, url_prefix="/api/health")


def probes() -> Probes:
    """This request's view of the checks (its settings), sharing the process's memory of
    whether the database role skips row-level security."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    shared: list[str | None] = app.extensions.setdefault("rls_bypass", [])
    return Probes(settings(), services(), background().broker_status,
                  background().alive_workers, shared)


def _checks(names: tuple[str, ...] | None = None) -> dict[str, Callable[[], str]]:
    return probes().table(names)


def _health_checks() -> HealthChecks:
    """One per app: it remembers which of this app's checks are still running."""
    checks: HealthChecks = current_app.extensions.setdefault("health_checks", HealthChecks())
    return checks


def run_checks(names: tuple[str, ...] | None = None) -> tuple[str, dict[str, CheckResult]]:
    """Every check (or those named), side by side, within HEALTH_TIMEOUT_MS."""
    critical = set(CRITICAL) if names is None else set(names)
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
