"""Per-request plumbing: the request id, the unit of work, access to settings and services."""

from __future__ import annotations

import logging
import time

from flask import Flask, Response, current_app, g, request

from core.config import Settings
from core.logs import accept_request_id, request_id_var
from core.services import Services
from core.tenancy.context import TenantContext
from core.uow import Origin, UnitOfWork
from workers.dispatch import Dispatcher

log = logging.getLogger("web.request")


def settings() -> Settings:
    value: Settings = current_app.extensions["settings"]
    return value


def services() -> Services:
    value: Services = current_app.extensions["services"]
    return value


def dispatcher() -> Dispatcher:
    value: Dispatcher = current_app.extensions["dispatcher"]
    return value


def tenant_context() -> TenantContext:
    """The tenant this request works in: its account's practice; every practice for admins."""
    view = g.get("view")
    if view is None:
        return TenantContext.anonymous()
    if view.role == "admin":
        return TenantContext.system()
    return TenantContext.of(view.tenant_uuid)


def uow() -> UnitOfWork:
    """This request's unit of work, created on first use and closed when the request ends."""
    if "uow" not in g:
        g.uow = UnitOfWork(
            services().db,
            fast_path=dispatcher(),
            origin=Origin(ip=request.remote_addr, user_agent=request.user_agent.string or None),
            tenant=tenant_context(),
        )
    unit: UnitOfWork = g.uow
    return unit


def _begin() -> None:
    g.request_id = accept_request_id(request.headers.get("X-Request-ID"))
    g.started = time.perf_counter()
    request_id_var.set(g.request_id)


def _finish(response: Response) -> Response:
    response.headers["X-Request-ID"] = g.get("request_id") or request_id_var.get() or ""
    if not request.path.startswith("/static/"):
        elapsed_ms = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
        log.info("%s %s %s %.1fms", request.method, request.path, response.status_code,
                 elapsed_ms)
    return response


def _close(_error: BaseException | None) -> None:
    unit = g.pop("uow", None)
    if unit is not None:
        unit.close()
    request_id_var.set(None)


def init_app(app: Flask) -> None:
    app.before_request(_begin)
    app.after_request(_finish)
    app.teardown_request(_close)
