"""The inbox: every notification kept, newest first, read or unread; the bell in the header
counts the unread ones. Live ones also appear as a toast (static/js/app.js)."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from core.notifications import service
from web.authn import current, login_required, me
from web.context import services, uow
from web.errors import MalformedRequest
from web.forms import ActionForm
from web.inputs import aware_timestamp
from web.redirects import safe_next_path

blueprint = Blueprint("inbox", __name__)


@blueprint.app_context_processor
def _unread() -> dict[str, Any]:
    view = current()
    if view is None or g.get("error_page") or request.path.startswith("/api/"):
        return {}
    return {"unread_count": service.unread_count(uow().session, services().regions,
                                                 view.account_uuid)}


@blueprint.get("/inbox")
@login_required
def inbox() -> str:
    before = aware_timestamp(request.args.get("before"), "before")
    items, older = service.inbox_page(uow().session, me().account_uuid, before=before)
    return render_template("inbox.html", items=items, older=older, form=ActionForm())


def _notification_id() -> uuid.UUID:
    try:
        return uuid.UUID(request.form.get("id", ""))
    except ValueError:
        raise MalformedRequest("id must be a notification id.") from None


@blueprint.post("/inbox/read")
@login_required
def mark_read() -> Response:
    if ActionForm().validate_on_submit():
        service.read_one(uow().session, me().account_uuid, _notification_id())
    return redirect(url_for("inbox.inbox"))


@blueprint.post("/inbox/open")
@login_required
def open_notification() -> Response:
    """Open what a notification is about; opening it reads it."""
    if not ActionForm().validate_on_submit():
        return redirect(url_for("inbox.inbox"))
    notification = service.read_one(uow().session, me().account_uuid, _notification_id())
    return redirect(safe_next_path(notification.link) or url_for("inbox.inbox"))


@blueprint.post("/inbox/read-all")
@login_required
def mark_all_read() -> Response:
    if ActionForm().validate_on_submit():
        service.mark_all_read(uow().session, me().account_uuid)
        flash("Everything in your inbox is marked read.", "success")
    return redirect(url_for("inbox.inbox"))
