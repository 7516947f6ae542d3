"""Rate limits on every request, counted in one round trip, with their headers on every answer.

Which budgets a request draws on is core's rule (core.ratelimits); the counting is the `limits`
library's fixed windows (core.adapters.rate_counter). Every response — 2xx, 4xx or 5xx —
carries X-RateLimit-Limit/-Remaining/-Reset of the budget closest to its limit; a request over a
budget is a 429 (a page, or the JSON envelope under /api/) with Retry-After, and nothing else
ever gets a Retry-After from here. `GET /api/rate-limit-status` shows the caller's budgets
without spending a request.

When Redis cannot answer, log-in, sign-up, join and reset form posts are counted in this
process's memory (guessing passwords never becomes unlimited; each process counts its own),
and every other request is served without a limit. One warning when that starts, one line when
it ends.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request

from core.adapters.cache import MemoryCache
from core.adapters.rate_counter import MemoryRateCounter, RateCounter, Scope, Tally, Window
from core.adapters.redis_link import RedisUnavailable
from core.errors import RateLimited
from core.events.types import EventType
from core.ratelimits import NEVER_UNLIMITED, Caller, scopes_for
from core.telemetry import RATE_LIMITED
from core.tenancy.plans import practice_budget
from web.audit import record_security
from web.context import services, settings, uow

log = logging.getLogger("web.security")
blueprint = Blueprint("limits", __name__)

# The breach counter outlives its window by this much, for the entry written at its end.
BREACH_COUNT_GRACE_SECONDS = 120
UNLIMITED_PATHS = ("/static/", "/api/health", "/metrics")
STATUS_ENDPOINT = "limits.status"


def exempt() -> bool:
    """Health probes and static files are never limited (a load balancer polls them)."""
    return request.path.startswith(UNLIMITED_PATHS) or request.path == "/favicon.ico"


class _Outage:
    """One warning when the limits' storage stops answering, one line when it is back."""

    def __init__(self) -> None:
        self.down = False
        self._lock = threading.Lock()

    def started(self, error: Exception) -> None:
        with self._lock:
            started, self.down = not self.down, True
        if started:
            log.warning("rate-limit storage unavailable (%s); log-in and reset forms are counted "
                        "in each process's memory, other requests are served without limits "
                        "until it answers again", str(error).splitlines()[0][:200])

    def ended(self) -> None:
        if not self.down:
            return
        with self._lock:
            ended, self.down = self.down, False
        if ended:
            log.warning("rate-limit storage is back; limits apply again")


class RequestLimits:
    def __init__(self, counter: RateCounter) -> None:
        self.counter = counter
        # Only needed when the counter is Redis: embedded mode counts in memory already.
        self.fallback = None if isinstance(counter, MemoryRateCounter) else MemoryRateCounter()
        # While the shared cache cannot count breaches, this process counts its own: refusals
        # during an outage must not each become an audit entry (each a write to the outbox).
        self.breaches = MemoryCache()
        self.outage = _Outage()

    def count(self, scopes: list[Scope], *, cost: int) -> Tally | None:
        """The tally of `scopes`, or None when nothing could count them (served unlimited)."""
        try:
            tally = self.counter.count(scopes, cost=cost)
        except RedisUnavailable as error:
            self.outage.started(error)
            kept = [scope for scope in scopes if scope.name in NEVER_UNLIMITED]
            if not kept or self.fallback is None:
                return None
            return self.fallback.count(kept, cost=cost)
        self.outage.ended()
        return tally


def _limits() -> RequestLimits:
    found: RequestLimits = current_app.extensions["request_limits"]
    return found


def caller_scopes() -> list[Scope]:
    view = g.get("view")
    auth_form_post = request.method == "POST" and _is_auth_form()
    caller = Caller(
        address=request.remote_addr,
        account_id=view.account_uuid if view is not None else None,
        tenant_id=view.tenant_uuid if view is not None else None,
        practice_per_minute=(practice_budget(services().regions, uow().session, view.tenant_uuid)
                             if view is not None and view.tenant_uuid is not None else None),
        auth_form_post=auth_form_post,
        target_email=request.form.get("email") if auth_form_post else None,
    )
    return scopes_for(settings(), caller)


def _is_auth_form() -> bool:
    view_function = current_app.view_functions.get(request.endpoint or "")
    return bool(getattr(view_function, "auth_rate_limited", False))


def _count_request() -> None:
    """before_request: spend one request from each budget, or refuse with a 429."""
    if exempt() or request.endpoint == STATUS_ENDPOINT:
        return
    tally = _limits().count(caller_scopes(), cost=1)
    g.rate_tally = tally
    if tally is not None and not tally.allowed:
        refusing = max(tally.refusing(), key=lambda w: w.reset_at)
        RATE_LIMITED.labels(refusing.scope.name).inc()
        _record_breach(refusing)
        wait = max(1, math.ceil(refusing.reset_at - time.time()))
        raise RateLimited(f"You have sent too many requests. Please wait {wait} seconds and try "
                          "again.", wait)


def _add_headers(response: Response) -> Response:
    tally: Tally | None = g.get("rate_tally")
    closest = tally.closest() if tally is not None else None
    if closest is not None:
        response.headers["X-RateLimit-Limit"] = str(closest.limit)
        response.headers["X-RateLimit-Remaining"] = str(closest.remaining)
        response.headers["X-RateLimit-Reset"] = str(math.ceil(closest.reset_at))
    return response


def _record_breach(window: Window) -> None:
    """One audit entry per budget, client and window, written when the window ends with the
    number of requests it refused: a flood of 429s must not become a flood of audit rows."""
    reset_at = int(window.reset_at)
    seconds_left = max(1, reset_at - int(time.time()))
    count_key = f"limit-breaches:{window.scope.storage_key}:{reset_at}"
    ttl = seconds_left + BREACH_COUNT_GRACE_SECONDS
    refused = services().cache.incr(count_key, ttl)
    shared = refused is not None
    if not shared:
        refused = _limits().breaches.incr(count_key, ttl)
    if refused is not None and refused > 1:
        return  # this window's entry is already on its way
    record_security(EventType.RATE_LIMIT_EXCEEDED, limit=str(window.scope.limit),
                    scope=window.scope.name,
                    count_key=count_key if shared else None,
                    delay_ms=seconds_left * 1000 if shared else None)


def _as_dict(window: Window) -> dict[str, Any]:
    return {"scope": window.scope.name, "limit": window.limit, "remaining": window.remaining,
            "reset": math.ceil(window.reset_at),
            "window_seconds": int(window.scope.limit.get_expiry())}


@blueprint.get("/api/rate-limit-status")
def status() -> Response:
    """The caller's budgets as they stand; looking spends nothing."""
    tally = _limits().count(caller_scopes(), cost=0)
    g.rate_tally = tally
    body: dict[str, Any] = {"limited": tally is not None,
                            "scopes": [_as_dict(w) for w in tally.windows] if tally else []}
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    app.extensions["request_limits"] = RequestLimits(app.extensions["services"].rate_counter)
    app.before_request(_count_request)
    app.after_request(_add_headers)
    app.register_blueprint(blueprint)
