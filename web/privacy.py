"""Your data: a copy of it, its erasure; a practice's retention period and legal holds; the
requests as admins and practice owners see them. Handlers parse, call one core service and
redirect; the request boundary commits."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from core import clock
from core.errors import Conflict, NotFound, ValidationFailed
from core.identity.models import Role
from core.privacy import erasure, holds, queries
from core.privacy import export as exports
from core.privacy.models import RequestStatus
from core.tenancy.models import Tenant
from web.authn import current, login_required, me, role_required
from web.context import services, settings, uow
from web.forms import ActionForm, refusal_flashed

blueprint = Blueprint("privacy", __name__)

PRIVACY_ANCHOR = "privacy"


@blueprint.app_context_processor
def _privacy_in_templates() -> dict[str, Any]:
    """For the settings page's "Your data" section (web/templates/privacy/_settings.html)."""
    def privacy_state() -> dict[str, Any]:
        view = current()
        if view is None:
            return {}
        session = uow().session
        return {"erasure": erasure.open_erasure(session, view.identity_uuid),
                "kept": erasure.kept_for(session, view.identity_uuid, clock.now()),
                "export": queries.latest_export(session, view.identity_uuid),
                "form": ActionForm()}

    return {"privacy_state": privacy_state}


def _back() -> ResponseReturnValue:
    return redirect(url_for("settings.settings_page", _anchor=PRIVACY_ANCHOR))


@blueprint.post("/settings/privacy/export")
@login_required
def request_export() -> ResponseReturnValue:
    if ActionForm().validate_on_submit():
        with refusal_flashed(Conflict, NotFound):
            exports.request_export(uow(), me(), password=request.form.get("password", ""))
            flash("We are preparing a copy of your data. A link to download it arrives in your "
                  "inbox and by e-mail; it works once, for 72 hours.", "info")
    return _back()


@blueprint.get("/privacy/exports/<uuid:request_id>/download")
@login_required
def download(request_id: uuid.UUID) -> Response:
    found = exports.open_download(uow(), settings().secret_key, request_id, me(),
                                  request.args.get("expires", ""),
                                  request.args.get("signature", ""))
    assert found.file_key is not None  # open_download returns ready exports only
    # Read now: the link is used up when this request commits, the file must come with it.
    body = b"".join(services().files.read(found.file_key))
    response = Response(body, mimetype="application/zip")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="my-data-{found.requested_at:%Y%m%d}.zip"')
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.post("/settings/privacy/erasure")
@login_required
def request_erasure() -> ResponseReturnValue:
    if ActionForm().validate_on_submit():
        with refusal_flashed(Conflict, NotFound):
            scheduled = erasure.request_erasure(uow(), me(),
                                                password=request.form.get("password", ""))
            when = scheduled.scheduled_for or clock.now()
            flash(f"Your login and your data will be erased on {when:%d %B %Y, %H:%M UTC}. "
                  "Until then you can cancel it here.", "info")
    return _back()


@blueprint.post("/settings/privacy/erasure/cancel")
@login_required
def cancel_erasure() -> ResponseReturnValue:
    if ActionForm().validate_on_submit():
        with refusal_flashed(Conflict, NotFound):
            erasure.cancel_erasure(uow(), me())
            flash("Your erasure is cancelled; nothing was erased.", "success")
    return _back()


# -- admins and practice owners -----------------------------------------------------------------

@blueprint.get("/admin/privacy")
@role_required(Role.ADMIN, hidden=True)
def admin_requests() -> str:
    session = uow().session
    return render_template("privacy/requests.html", area="admin",
                           rows=queries.requests(session),
                           restricted=queries.restricted_records(session),
                           form=ActionForm())


@blueprint.route("/admin/privacy/restricted/<uuid:record_id>", methods=["GET", "POST"])
@role_required(Role.ADMIN, hidden=True)
def read_restricted(record_id: uuid.UUID) -> ResponseReturnValue:
    form = ActionForm()
    record = None
    if form.validate_on_submit():
        with refusal_flashed():
            record = holds.read_restricted(uow(), me(), record_id,
                                           request.form.get("reason", ""))
    return render_template("privacy/restricted.html", record_id=record_id, record=record,
                           form=ActionForm())


@blueprint.get("/therapist/privacy")
@role_required(Role.THERAPIST, hidden=True)
def practice_requests() -> str:
    session, tenant_id = uow().session, me().tenant_uuid
    if tenant_id is None:
        abort(404)
    tenant = session.get(Tenant, tenant_id)
    return render_template("privacy/requests.html", area="therapist",
                           rows=queries.requests(session, tenant_id=tenant_id),
                           holds=holds.holds_of_practice(session, tenant_id),
                           clients=holds.clients_of_practice(session, tenant_id),
                           retention=holds.retention_months(tenant),
                           form=ActionForm())


def _practice_back() -> ResponseReturnValue:
    return redirect(url_for("privacy.practice_requests"))


@blueprint.post("/therapist/privacy/retention")
@role_required(Role.THERAPIST, hidden=True)
def set_retention() -> ResponseReturnValue:
    if ActionForm().validate_on_submit():
        with refusal_flashed():
            months = holds.set_retention(uow(), me(), request.form.get("months", ""))
            flash(f"Your practice keeps an erased client's records for {months} months."
                  if months else "Your practice keeps no records of erased clients.", "success")
    return _practice_back()


def _date(value: str) -> datetime | None:
    if not value.strip():
        return None
    try:
        return datetime.strptime(value.strip(), "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise ValidationFailed({"until": "Enter a date as YYYY-MM-DD, or none."}) from None


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound("There is nothing at this address.") from None


@blueprint.post("/therapist/privacy/holds")
@role_required(Role.THERAPIST, hidden=True)
def place_hold() -> ResponseReturnValue:
    if ActionForm().validate_on_submit():
        with refusal_flashed(Conflict, NotFound):
            holds.place_hold(uow(), me(), _uuid(request.form.get("account_id", "")),
                             reason=request.form.get("reason", ""),
                             until=_date(request.form.get("until", "")))
            flash("The legal hold is in place: this client's records are kept until you lift "
                  "it.", "success")
    return _practice_back()


@blueprint.post("/therapist/privacy/holds/<uuid:hold_id>/release")
@role_required(Role.THERAPIST, hidden=True)
def release_hold(hold_id: uuid.UUID) -> ResponseReturnValue:
    # Another practice's hold is a 404 (and an ACCESS_DENIED entry), as every object route is.
    if ActionForm().validate_on_submit():
        with refusal_flashed():
            holds.release_hold(uow(), me(), hold_id)
            flash("The legal hold is lifted.", "success")
    return _practice_back()


STATUS_LABELS = {RequestStatus.QUEUED: "Being prepared", RequestStatus.READY: "Ready",
                 RequestStatus.DOWNLOADED: "Downloaded", RequestStatus.SCHEDULED: "Scheduled",
                 RequestStatus.CANCELLED: "Cancelled", RequestStatus.RESTRICTED: "Restricted",
                 RequestStatus.COMPLETED: "Completed"}


@blueprint.app_template_filter("privacy_status")
def _status_label(status: str) -> str:
    return STATUS_LABELS.get(RequestStatus(status), status) if status in set(
        RequestStatus) else status
