"""GET /api/health (every part, bounded by a timeout), /api/health/ready (database and schema,
for load balancers) and /api/health/live (the process only: it touches no backend).

The liveness probe is answered in front of Flask (`LivenessProbe`): it asks only whether the
process serves requests, so it skips the session, the limits and the CSRF machinery that every
page needs, and an orchestrator polling it every second costs a fraction of a page. It keeps what
every response has: a request id, the security headers and its line in the request log.

The public answer gives each check's status and latency; the details (hosts, counts, errors)
go only to a platform admin's session or to `Authorization: Bearer $METRICS_TOKEN`."""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from core.health import FAIL, UNHEALTHY, CheckResult, HealthChecks
from core.identity.models import Role
from core.logs import accept_request_id, request_id_var
from core.monitoring.probes import CRITICAL, READY, Probes
from web.context import background, services, settings
from web.security import HSTS, plain_http_allowed, static_security_headers

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


LIVE_PATH = "/api/health/live"
LIVE_BODY = b'{"status":"alive"}\n'
request_log = logging.getLogger("web.request")


@blueprint.get("/live")
@plain_http_allowed
def live() -> Response:
    """Reached only when the probe in front of Flask is not installed (it answers GET/HEAD)."""
    response = jsonify({"status": "alive"})
    response.headers["Cache-Control"] = "no-store"
    return response


class LivenessProbe:
    """WSGI middleware: GET and HEAD /api/health/live answered before Flask; every other
    request passes through: other methods on that path for their 405 envelope, and any query
    string for the checks every URL gets (a NUL in it is a 400)."""

    def __init__(self, app: Any, *, production: bool) -> None:
        self.app = app
        self.headers = [("Content-Type", "application/json"),
                        ("Content-Length", str(len(LIVE_BODY))),
                        ("Cache-Control", "no-store"),
                        *static_security_headers()]
        self.production = production

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD")
        if (environ.get("PATH_INFO") != LIVE_PATH or method not in ("GET", "HEAD")
                or environ.get("QUERY_STRING")):
            return self.app(environ, start_response)  # type: ignore[no-any-return]
        started = time.perf_counter()
        request_id = accept_request_id(environ.get("HTTP_X_REQUEST_ID"))
        headers = [*self.headers, ("X-Request-ID", request_id)]
        if self.production and _over_https(environ):
            headers.append(("Strict-Transport-Security", HSTS))
        start_response("200 OK", headers)
        token = request_id_var.set(request_id)
        try:
            request_log.info("%s %s 200 %.1fms", method, LIVE_PATH,
                             (time.perf_counter() - started) * 1000)
        finally:
            request_id_var.reset(token)
        return [] if method == "HEAD" else [LIVE_BODY]


def _over_https(environ: dict[str, Any]) -> bool:
    return bool(environ.get("wsgi.url_scheme") == "https"
                or environ.get("HTTP_X_FORWARDED_PROTO") == "https")


def install_liveness_probe(app: Flask, *, production: bool) -> None:
    """Call last: the probe wraps whatever WSGI app Flask has by then."""
    app.wsgi_app = LivenessProbe(app.wsgi_app, production=production)  # type: ignore[method-assign]
