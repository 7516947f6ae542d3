"""Each role's home: /dashboard sends you to yours."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from core.audit import queries as audit_queries
from core.identity import invitations, login, queries
from core.identity.models import Account, Role
from core.tenancy.guard import owned
from core.tenancy.models import Tenant
from web.authn import current, login_required, me, role_required
from web.context import settings, uow
from web.forms import ActionForm, EmailForm, errors_shown_on, form_status
from web.onboarding import detour, unfinished_stage

blueprint = Blueprint("dashboards", __name__)

HOMES = {Role.CLIENT: "dashboards.client", Role.THERAPIST: "dashboards.therapist",
         Role.ADMIN: "dashboards.admin"}


@blueprint.app_context_processor
def _resume_stage() -> dict[str, Any]:
    """The resume banner on dashboards of people who chose "Save & Continue Later"."""
    if not request.endpoint or not request.endpoint.startswith("dashboards."):
        return {}
    if g.get("error_page"):  # an error page has no banner (and the database may be away)
        return {}
    return {"resume_stage": unfinished_stage(current())}


def _activity() -> Any:
    return audit_queries.security_activity(uow().session, me().identity_uuid)


def _account() -> Account:
    return owned(uow().session, Account, me().account_uuid)


@blueprint.get("/dashboard")
@login_required
def dashboard() -> Response:
    return detour(me()) or redirect(url_for(HOMES[Role(me().role)]))


@blueprint.get("/client")
@role_required(Role.CLIENT)
def client() -> ResponseReturnValue:
    if (elsewhere := detour(me())) is not None:
        return elsewhere
    session = uow().session
    tenant = session.get(Tenant, me().tenant_uuid)
    return render_template("dashboards/client.html", tenant=tenant,
                           therapists=queries.therapists(session), activity=_activity())


def _therapist_page(invite_form: EmailForm) -> tuple[str, int]:
    session = uow().session
    tenant = session.get(Tenant, me().tenant_uuid)
    join_url = settings().public_url + url_for("auth.join", slug=tenant.slug) if tenant else None
    return render_template(
        "dashboards/therapist.html", tenant=tenant, join_url=join_url,
        email_verified=me().email_verified,
        clients=queries.clients(session), invitations=queries.invitations(session),
        invite_form=invite_form, action_form=ActionForm(), activity=_activity(),
    ), form_status(invite_form)


@blueprint.get("/therapist")
@role_required(Role.THERAPIST)
def therapist() -> ResponseReturnValue:
    return detour(me()) or _therapist_page(EmailForm())


@blueprint.post("/therapist/invitations")
@role_required(Role.THERAPIST)
def invite() -> ResponseReturnValue:
    form = EmailForm()
    if form.validate_on_submit():
        with errors_shown_on(form):
            invitation = invitations.invite_client(uow(), _account(), form.email.data or "")
            flash(f"Invitation sent to {invitation.email}.", "success")
            return redirect(url_for("dashboards.therapist"))
    return _therapist_page(form)


@blueprint.post("/therapist/invitations/<uuid:invitation_id>/revoke")
@role_required(Role.THERAPIST)
def revoke_invitation(invitation_id: uuid.UUID) -> Response:
    if ActionForm().validate_on_submit():
        invitation = invitations.revoke_invitation(uow(), invitation_id)
        flash(f"The invitation to {invitation.email} can no longer be used.", "info")
    return redirect(url_for("dashboards.therapist"))


@blueprint.get("/therapist/clients/<uuid:account_id>")
@role_required(Role.THERAPIST)
def client_detail(account_id: uuid.UUID) -> str:
    account = queries.client_of_practice(uow().session, account_id)
    return render_template("dashboards/client_detail.html", client=account)


@blueprint.get("/admin")
@role_required(Role.ADMIN)
def admin() -> str:
    session = uow().session
    return render_template(
        "dashboards/admin.html", practices=queries.practices(session),
        locked=queries.locked_identities(session), action_form=ActionForm(),
        security=audit_queries.recent(session, types=[
            "LOGIN_FAILED", "ACCOUNT_LOCKED", "ACCESS_DENIED", "UNAUTHORIZED_ACCESS_ATTEMPT",
            "RATE_LIMIT_EXCEEDED"]),
        activity=_activity(),
    )


@blueprint.get("/admin/practices/<uuid:tenant_id>")
@role_required(Role.ADMIN)
def admin_practice(tenant_id: uuid.UUID) -> str:
    session = uow().session
    tenant = owned(session, Tenant, tenant_id)
    return render_template("dashboards/admin_practice.html", tenant=tenant,
                           therapists=queries.therapists(session, tenant_id=tenant.id),
                           clients=queries.clients(session, tenant_id=tenant.id))


@blueprint.post("/admin/identities/<uuid:identity_id>/unlock")
@role_required(Role.ADMIN)
def unlock(identity_id: uuid.UUID) -> Response:
    if ActionForm().validate_on_submit():
        identity = login.unlock(uow(), _account(), identity_id)
        flash(f"{identity.email} can log in again.", "success")
    return redirect(url_for("dashboards.admin"))
