"""The audit log viewer: /admin/audit (every practice) and /therapist/audit (one's practice).

Filters and the page position live in the URL, so a view can be shared. Exports are POSTs (they
are audited, and a large one queues work): small ones stream from here, large ones go to a
worker and come back as a notification with a signed download link.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Response,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask.typing import ResponseReturnValue

from core.audit import exports, viewer
from core.audit.chain import OUTCOMES
from core.audit.exports import Scope
from core.audit.status import names_for, status
from core.errors import ValidationFailed
from core.identity import queries as identity_queries
from core.identity.models import Role
from core.scoping import set_context
from web.authn import login_required, me, role_required
from web.context import request_tenant, services, settings, uow
from web.forms import ActionForm
from web.mfa import fresh_second_factor_required

blueprint = Blueprint("audit", __name__)

AREAS = {"admin": Role.ADMIN, "therapist": Role.THERAPIST}


def _scope() -> Scope:
    view = me()
    return Scope(view.account_uuid, None if view.role == Role.ADMIN else view.tenant_uuid)


def _zone() -> ZoneInfo:
    return viewer.time_zone_of(uow().session, me().account_uuid)


def _filters(source: Any, zone: ZoneInfo) -> viewer.Filters:
    scope = _scope()
    return exports.confined(viewer.parse_filters(source.to_dict(flat=False), zone,
                                                 practice=scope.tenant_id), scope)


@blueprint.app_template_filter("local")
def local_time(moment: datetime | None, zone: ZoneInfo) -> str:
    if moment is None:
        return "—"
    return moment.astimezone(zone).strftime("%d %b %Y, %H:%M:%S %Z")


def _log(area: str) -> ResponseReturnValue:
    session, zone = uow().session, _zone()
    try:
        filters = _filters(request.args, zone)
    except ValidationFailed as refused:
        # The filters again as they were typed, each mistake at its field, and no entries
        # until they can be applied.
        return _log_page(area, zone, _typed(request.args), errors=refused.errors), 422
    page = viewer.page(session, filters,
                       older_than=viewer.Cursor.parse(request.args.get("older")),
                       newer_than=viewer.Cursor.parse(request.args.get("newer")))
    return _log_page(area, zone, filters.as_args(), page=page)


def _log_page(area: str, zone: ZoneInfo, args: dict[str, Any], *,
              page: viewer.Page | None = None, errors: dict[str, str] | None = None) -> str:
    session = uow().session
    practices, actors = names_for(session, page.entries) if page is not None else ({}, {})
    return render_template(
        "audit/log.html", area=area, page=page, args=args, errors=errors or {},
        zone=zone, practices=practices, actors=actors,
        event_types=viewer.event_types_for(_scope().tenant_id),
        outcomes=OUTCOMES, all_practices=_practices(area), action_form=ActionForm(),
        integrity=status(session, settings()) if area == "admin" else None,
        stream_limit=settings().audit_stream_export_limit)


def _typed(source: Any) -> dict[str, Any]:
    """The filter fields as they were sent, in the shape of Filters.as_args."""
    typed: dict[str, Any] = {name: (source.get(name) or "").strip()
                             for name in ("practice", "actor", "ip", "from", "to", "outcome")}
    typed["type"] = [value for value in source.getlist("type") if value.strip()]
    return {name: value for name, value in typed.items() if value}


def _practices(area: str) -> list[Any]:
    """The practice filter's choices (admins only: an owner's view is their practice)."""
    if area != "admin":
        return []
    return [row.tenant for row in identity_queries.practices(uow().session)]


def _entry(area: str, entry_id: int) -> str:
    session = uow().session
    found = viewer.entry(session, entry_id)
    practices, actors = names_for(session, [found])
    return render_template("audit/entry.html", area=area, entry=found, zone=_zone(),
                           practices=practices, actors=actors)


def _export(area: str) -> ResponseReturnValue:
    form = ActionForm()
    if not form.validate_on_submit():
        return redirect(url_for(f"audit.{area}_log"))
    fmt = exports.check_format(request.form.get("format", "csv"))
    filters = exports.as_of_now(_filters(request.form, _zone()))
    session, scope = uow().session, _scope()
    limit = settings().audit_stream_export_limit
    rows = exports.count(session, filters, limit=limit)
    if rows > limit:
        exports.request_export(uow(), scope, filters, fmt)
        flash(f"More than {limit:,} entries: the export is being prepared. A notice with its "
              "download link appears here when it is ready.", "info")
        return redirect(url_for(f"audit.{area}_log", **filters.as_args()))
    exports.record_exported(uow(), scope, filters, fmt, rows, "page")
    return _attachment(_rendered(filters, fmt), fmt,
                       f"audit-log-{datetime.now():%Y%m%d-%H%M%S}.{fmt}")


def _rendered(filters: viewer.Filters, fmt: str) -> Iterator[bytes]:
    """The export, read by a session of its own, in the request's practice, that ends with the
    body (the request's unit of work has committed the AUDIT_EXPORTED entry by then)."""
    session = services().db.session()
    set_context(session, request_tenant())
    try:
        yield from exports.render(
            (exports.as_record(e) for e in exports.entries(session, filters)), fmt)
    finally:
        session.close()


def _attachment(body: Iterator[bytes], fmt: str, filename: str) -> Response:
    response = Response(stream_with_context(body), mimetype=exports.FORMATS[fmt])
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


def _routes(area: str, role: Role) -> None:
    guard = role_required(role, hidden=True)

    def log() -> ResponseReturnValue:
        return _log(area)

    def entry(entry_id: int) -> str:
        return _entry(area, entry_id)

    @fresh_second_factor_required  # an export of data: a fresh second factor first
    def export() -> ResponseReturnValue:
        return _export(area)

    for rule, view, methods in ((f"/{area}/audit", log, ["GET"]),
                                (f"/{area}/audit/entries/<int:entry_id>", entry, ["GET"]),
                                (f"/{area}/audit/export", export, ["POST"])):
        name = f"{area}_{view.__name__}"
        view.__name__ = view.__qualname__ = name
        blueprint.add_url_rule(rule, name, guard(view), methods=methods)


for _area, _role in AREAS.items():
    _routes(_area, _role)


@blueprint.get("/audit/exports/<uuid:export_id>/download")
@login_required
def download(export_id: uuid.UUID) -> Response:
    export = exports.open_download(uow(), settings().secret_key, export_id, me().account_uuid,
                                   request.args.get("expires", ""),
                                   request.args.get("signature", ""))
    assert export.file_key is not None  # open_download returns finished exports only
    return _attachment(services().files.read(export.file_key), export.format,
                       f"audit-export-{export.id}.{export.format}")

