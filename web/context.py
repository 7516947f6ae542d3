"""Per-request plumbing: the request id, the one unit of work, access to settings and services.

A request's unit of work is opened on first use and committed once, by the request boundary
(`PlatformFlask.dispatch_request`), after a view returned a response that is not an error;
an exception or an error status rolls it back. A CLI command has the same boundary of its own
(`command_unit_of_work`). Views, commands and core services never commit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, Response, current_app, g, request
from flask.typing import ResponseReturnValue

from core.caching import begin_request_memo, end_request_memo
from core.config import Settings
from core.logs import accept_request_id, request_id_var
from core.scoping import TenantContext
from core.services import Services
from core.uow import Origin, UnitOfWork
from web.ports import Background

log = logging.getLogger("web.request")


class PlatformFlask(Flask):
    """Flask with the request boundary: the view's response decides commit or rollback. A
    commit that fails (a constraint, a lost database) is handled like an error of the view."""

    def dispatch_request(self) -> ResponseReturnValue:
        response = self.make_response(super().dispatch_request())
        if response.status_code < 400:
            _commit_request()
        return response


def settings() -> Settings:
    value: Settings = current_app.extensions["settings"]
    return value


def services() -> Services:
    value: Services = current_app.extensions["services"]
    return value


def background() -> Background:
    value: Background = current_app.extensions["background"]
    return value


def origin() -> Origin:
    return Origin(ip=request.remote_addr, user_agent=request.user_agent.string or None)


def request_tenant() -> TenantContext:
    """The practice this request works in, as web.authn decided it from the session."""
    tenant: TenantContext = g.get("tenant") or TenantContext.anonymous()
    return tenant


def uow() -> UnitOfWork:
    """This request's unit of work, opened on first use; its tenant is decided once, when the
    session is known (web.authn)."""
    if "uow" not in g:
        g.uow = UnitOfWork(services().db, fast_path=background().fast_path, origin=origin(),
                           tenant=request_tenant())
    unit: UnitOfWork = g.uow
    return unit


def _commit_request() -> None:
    unit: UnitOfWork | None = g.get("uow")
    if unit is not None and (unit.has_changes() or unit.session.in_transaction()):
        unit.commit()


@contextmanager
def command_unit_of_work() -> Iterator[UnitOfWork]:
    """A CLI command's unit of work, committed once its work succeeded: the command's boundary,
    as `PlatformFlask.dispatch_request` is a request's. A command acts for the platform."""
    with UnitOfWork(services().db, fast_path=background().fast_path,
                    tenant=TenantContext.system()) as unit:
        yield unit
        unit.commit()


def after_request_ends(callback: Any) -> None:
    """Run `callback()` once the request's unit of work is closed (committed or rolled back)."""
    g.setdefault("after_request_ends", []).append(callback)


def _begin() -> None:
    g.request_id = accept_request_id(request.headers.get("X-Request-ID"))
    g.started = time.perf_counter()
    request_id_var.set(g.request_id)
    g.cache_memo = begin_request_memo()


def _finish(response: Response) -> Response:
    response.headers["X-Request-ID"] = g.get("request_id") or request_id_var.get() or ""
    if not request.path.startswith("/static/"):
        elapsed_ms = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
        log.info("%s %s %s %.1fms", request.method, request.path, response.status_code,
                 elapsed_ms)
    return response


def _close(_error: BaseException | None) -> None:
    memo = g.pop("cache_memo", None)
    if memo is not None:
        end_request_memo(memo)
    unit = g.pop("uow", None)
    if unit is not None:
        unit.close()  # whatever the boundary did not commit is rolled back
    for callback in g.pop("after_request_ends", ()):
        try:
            callback()
        except Exception:
            log.exception("after-request callback failed")
    request_id_var.set(None)


def init_app(app: Flask) -> None:
    app.before_request(_begin)
    app.after_request(_finish)
    app.teardown_request(_close)
