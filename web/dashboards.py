"""Each role's home: /dashboard sends you to yours."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from core.audit import queries as audit_queries
from core.errors import DomainError, ValidationFailed
from core.identity import queries, service
from core.identity.models import Account, Invitation, Role
from core.tenancy.context import TenantContext, set_context
from core.tenancy.models import Tenant
from web.authn import current, login_required, owned_or_404, role_required
from web.context import settings, uow
from web.forms import ActionForm, EmailForm, apply_errors
from web.onboarding import gate, pending_stage

blueprint = Blueprint("dashboards", __name__)


@blueprint.app_context_processor
def _resume_stage() -> dict[str, Any]:
    """The resume banner on dashboards of people who chose "Save & Continue Later"."""
    if not request.endpoint or not request.endpoint.startswith("dashboards."):
        return {}
    if g.get("error_page"):  # an error page has no banner (and the database may be away)
        return {}
    return {"resume_stage": pending_stage(current())}

HOMES = {Role.CLIENT: "dashboards.client", Role.THERAPIST: "dashboards.therapist",
         Role.ADMIN: "dashboards.admin"}


def _me() -> Any:
    view = current()
    assert view is not None
    return view


def _activity() -> Any:
    return audit_queries.security_activity(uow().session, _me().identity_uuid)


@blueprint.get("/dashboard")
@login_required
def dashboard() -> Response:
    return gate(_me()) or redirect(url_for(HOMES[Role(_me().role)]))


@blueprint.get("/client")
@role_required(Role.CLIENT)
def client() -> Any:
    if (detour := gate(_me())) is not None:
        return detour
    session = uow().session
    tenant = session.get(Tenant, _me().tenant_uuid)
    return render_template("dashboards/client.html", tenant=tenant,
                           therapists=queries.therapists(session), activity=_activity())


def _therapist_page(invite_form: EmailForm, status: int = 200) -> tuple[str, int]:
    session = uow().session
    tenant = session.get(Tenant, _me().tenant_uuid)
    join_url = settings().public_url + url_for("auth.join", slug=tenant.slug) if tenant else None
    return render_template(
        "dashboards/therapist.html", tenant=tenant, join_url=join_url,
        email_verified=_me().email_verified,
        clients=queries.clients(session), invitations=queries.invitations(session),
        invite_form=invite_form, action_form=ActionForm(), activity=_activity(),
    ), status


@blueprint.get("/therapist")
@role_required(Role.THERAPIST)
def therapist() -> Any:
    return gate(_me()) or _therapist_page(EmailForm())


@blueprint.post("/therapist/invitations")
@role_required(Role.THERAPIST)
def invite() -> Any:
    form = EmailForm()
    if not form.validate_on_submit():
        return _therapist_page(form, 422)
    unit = uow()
    inviter = unit.session.get(Account, _me().account_uuid)
    try:
        invitation = service.invite_client(unit, inviter, form.email.data or "")
    except ValidationFailed as failed:
        unit.rollback()
        apply_errors(form, failed)
        return _therapist_page(form, 422)
    except DomainError as error:
        unit.rollback()
        form.form_errors.append(str(error))
        return _therapist_page(form, 403)
    unit.commit()
    flash(f"Invitation sent to {invitation.email}.", "success")
    return redirect(url_for("dashboards.therapist"))


@blueprint.post("/therapist/invitations/<uuid:invitation_id>/revoke")
@role_required(Role.THERAPIST)
def revoke_invitation(invitation_id: uuid.UUID) -> Response:
    invitation = owned_or_404(Invitation, invitation_id)
    if ActionForm().validate_on_submit():
        therapist = uow().session.get(Account, _me().account_uuid)
        service.revoke_invitation(uow(), therapist, invitation.id)
        uow().commit()
        flash(f"The invitation to {invitation.email} can no longer be used.", "info")
    return redirect(url_for("dashboards.therapist"))


@blueprint.get("/therapist/clients/<uuid:account_id>")
@role_required(Role.THERAPIST)
def client_detail(account_id: uuid.UUID) -> str:
    account = owned_or_404(Account, account_id)
    if account.role != Role.CLIENT:
        abort(404)
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
    tenant = owned_or_404(Tenant, tenant_id)
    session = uow().session
    # Look at one practice through its own wall, as its therapist would.
    set_context(session, TenantContext.of(tenant.id))
    return render_template("dashboards/admin_practice.html", tenant=tenant,
                           therapists=queries.therapists(session),
                           clients=queries.clients(session))


@blueprint.post("/admin/identities/<uuid:identity_id>/unlock")
@role_required(Role.ADMIN)
def unlock(identity_id: uuid.UUID) -> Response:
    if ActionForm().validate_on_submit():
        admin_account = uow().session.get(Account, _me().account_uuid)
        try:
            identity = service.unlock(uow(), admin_account, identity_id)
        except DomainError:
            abort(404)
        uow().commit()
        flash(f"{identity.email} can log in again.", "success")
    return redirect(url_for("dashboards.admin"))
