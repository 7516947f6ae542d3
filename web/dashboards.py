"""Each role's home: /dashboard sends you to yours."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from core.audit import queries as audit_queries
from core.identity import clients, invitations, login, practice, queries
from core.identity.models import Account, Role
from core.identity.queries import PracticeHome
from core.metrics import read
from core.onboarding.schemas import LANGUAGES
from core.tenancy import plans
from core.tenancy.guard import owned
from core.tenancy.models import Tenant
from web.authn import current, login_required, me, reads_ahead, role_required
from web.context import services, settings, uow
from web.forms import (
    ActionForm,
    EmailForm,
    PracticeLimitForm,
    errors_shown_on,
    form_status,
    refusal_flashed,
)
from web.mfa import fresh_second_factor_required
from web.onboarding import detour, unfinished_stage
from web.page_cache import Rendered, render_signed_in

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
    return audit_queries.cached_security_activity(uow().session, services().regions,
                                                  me().identity_uuid)


def _home() -> PracticeHome | None:
    tenant_id = me().tenant_uuid
    if tenant_id is None:
        return None
    return queries.practice_home(uow().session, services().regions, tenant_id)


def _page_content(db_session: Any, identity_id: Any, tenant_id: Any) -> list[Any]:
    """A dashboard's cached content, read along with the session (web.authn.reads_ahead)."""
    wanted: list[Any] = [audit_queries.activity_entry(db_session, identity_id)]
    if tenant_id is not None:
        wanted.append(queries.practice_home_entry(db_session, tenant_id))
    return wanted


def _therapist_content(db_session: Any, identity_id: Any, tenant_id: Any) -> list[Any]:
    """The therapist's dashboard also shows the practice's rolled-up figures."""
    wanted = _page_content(db_session, identity_id, tenant_id)
    if tenant_id is not None:
        wanted.append(read.practice_figures_entry(db_session, tenant_id))
    return wanted


def _account() -> Account:
    return owned(uow().session, Account, me().account_uuid)


@blueprint.get("/dashboard")
@login_required
def dashboard() -> Response:
    return detour(me()) or redirect(url_for(HOMES[Role(me().role)]))


@blueprint.get("/client")
@role_required(Role.CLIENT)
@reads_ahead(_page_content)
def client() -> ResponseReturnValue:
    if (elsewhere := detour(me())) is not None:
        return elsewhere
    return render_signed_in(_client_page)


def _client_page() -> Rendered:
    home = _home()
    return Rendered(render_template(
        "dashboards/client.html", practice=home.details if home else None,
        tenant=home.tenant if home else None, activity=_activity()))


def _join_url(tenant: Tenant | None) -> str | None:
    if tenant is None:
        return None
    return settings().public_url + practice.join_link(tenant).path(tenant.slug)


def _therapist_page(invite_form: EmailForm) -> Rendered:
    home = _home()
    tenant = home.tenant if home else None
    figures = (read.practice_figures(uow().session, services().regions, tenant.id)
               if tenant else None)
    return Rendered(render_template(
        "dashboards/therapist.html", tenant=tenant, join_url=_join_url(tenant),
        join=practice.join_link(tenant) if tenant else None,
        email_verified=me().email_verified, newest=home.newest if home else None,
        invitations=home.invitations if home else [],
        invite_form=invite_form, activity=_activity(), figures=figures,
    ), form_status(invite_form), home.steady_until() if home else None)


@blueprint.get("/therapist")
@role_required(Role.THERAPIST)
@reads_ahead(_therapist_content)
def therapist() -> ResponseReturnValue:
    return detour(me()) or render_signed_in(lambda: _therapist_page(EmailForm()))


@blueprint.post("/therapist/invitations")
@role_required(Role.THERAPIST)
def invite() -> ResponseReturnValue:
    form = EmailForm()
    if form.validate_on_submit():
        with errors_shown_on(form):
            invitation = invitations.invite_client(uow(), _account(), form.email.data or "")
            again = invitation.send_count > 1
            flash(f"Invitation {'sent again' if again else 'sent'} to {invitation.email}"
                  f"{' with a new link, valid for 7 days' if again else ''}.", "success")
            return redirect(url_for("dashboards.therapist"))
    page = _therapist_page(form)
    return page.html, page.status


@blueprint.post("/therapist/invitations/<uuid:invitation_id>/resend")
@role_required(Role.THERAPIST)
def resend_invitation(invitation_id: uuid.UUID) -> Response:
    if ActionForm().validate_on_submit():
        with refusal_flashed():
            invitation = invitations.resend_invitation(uow(), _account(), invitation_id)
            flash(f"Invitation sent again to {invitation.email}, with a new link valid for 7 "
                  "days.", "success")
    return redirect(url_for("dashboards.therapist", _anchor="invitations"))


@blueprint.post("/therapist/invitations/<uuid:invitation_id>/revoke")
@role_required(Role.THERAPIST)
def revoke_invitation(invitation_id: uuid.UUID) -> Response:
    if ActionForm().validate_on_submit():
        invitation = invitations.revoke_invitation(uow(), invitation_id)
        flash(f"The invitation to {invitation.email} can no longer be used.", "info")
    return redirect(url_for("dashboards.therapist", _anchor="invitations"))


@blueprint.get("/therapist/clients")
@role_required(Role.THERAPIST)
def client_list() -> ResponseReturnValue:
    if (elsewhere := detour(me())) is not None:
        return elsewhere
    args = request.args
    query = clients.ClientQuery.parse(search=args.get("q"), sort=args.get("sort"),
                                      direction=args.get("dir"), after=args.get("after"),
                                      before=args.get("before"))
    return render_template("dashboards/clients.html",
                           page=clients.client_page(uow().session, query),
                           sorts=SORT_LABELS)


SORT_LABELS = {"name": "Name", "email": "E-mail", "joined": "Joined", "seen": "Last seen"}


@blueprint.get("/therapist/clients/<uuid:account_id>")
@role_required(Role.THERAPIST)
def client_detail(account_id: uuid.UUID) -> str:
    detail = clients.client_detail(uow().session, account_id)
    return render_template("dashboards/client_detail.html", detail=detail, client=detail.account,
                           action_form=ActionForm(), languages=LANGUAGES,
                           invitation_state_of=invitations.state_of)


@blueprint.post("/therapist/clients/<uuid:account_id>/remind")
@role_required(Role.THERAPIST)
def remind_client(account_id: uuid.UUID) -> Response:
    if ActionForm().validate_on_submit():
        with refusal_flashed():
            client_account = clients.remind_client(uow(), _account(), account_id)
            flash(f"We e-mailed {client_account.display_name} a link to finish setting up.",
                  "success")
    return redirect(url_for("dashboards.client_detail", account_id=account_id))


@blueprint.get("/therapist/clients/<uuid:account_id>/remove")
@role_required(Role.THERAPIST)
def confirm_remove_client(account_id: uuid.UUID) -> str:
    detail = clients.client_detail(uow().session, account_id)
    return render_template("dashboards/client_remove.html", detail=detail,
                           action_form=ActionForm())


@blueprint.post("/therapist/clients/<uuid:account_id>/remove")
@role_required(Role.THERAPIST)
def remove_client(account_id: uuid.UUID) -> Response:
    detail = clients.client_detail(uow().session, account_id)  # another practice's: a 404
    if not ActionForm().validate_on_submit() or request.form.get("confirm") != "remove":
        return redirect(url_for("dashboards.confirm_remove_client", account_id=account_id))
    clients.remove_client(uow(), _account(), account_id)
    flash(f"{detail.account.display_name} is no longer a client of your practice. Their login "
          "and any other accounts they have are untouched.", "success")
    return redirect(url_for("dashboards.client_list"))


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
        activity=_activity(), cache_counts=services().regions.counts(),
    )


def _practice_page(tenant_id: uuid.UUID, form: PracticeLimitForm | None = None
                   ) -> tuple[str, int]:
    session = uow().session
    tenant = owned(session, Tenant, tenant_id)
    budget = plans.budget_of(session, tenant)
    form = form or PracticeLimitForm(requests_per_minute=budget.override)
    return render_template("dashboards/admin_practice.html", tenant=tenant, budget=budget,
                           form=form, therapists=queries.therapists(session, tenant_id=tenant.id),
                           clients=queries.clients(session, tenant_id=tenant.id)
                           ), form_status(form)


@blueprint.get("/admin/practices/<uuid:tenant_id>")
@role_required(Role.ADMIN)
def admin_practice(tenant_id: uuid.UUID) -> tuple[str, int]:
    return _practice_page(tenant_id)


@blueprint.post("/admin/practices/<uuid:tenant_id>/limits")
@role_required(Role.ADMIN)
@fresh_second_factor_required
def set_practice_limit(tenant_id: uuid.UUID) -> ResponseReturnValue:
    """A platform admin sets the practice's requests per minute (empty: its plan's)."""
    form = PracticeLimitForm()
    if form.validate_on_submit():
        with errors_shown_on(form):
            plans.set_practice_budget(uow(), actor_account_id=me().account_uuid,
                                      actor_role=me().role, tenant_id=tenant_id,
                                      per_minute=form.requests_per_minute.data)
            flash("The practice's request limit is saved; it applies from the next request.",
                  "success")
            return redirect(url_for("dashboards.admin_practice", tenant_id=tenant_id))
    return _practice_page(tenant_id, form)


@blueprint.post("/admin/identities/<uuid:identity_id>/unlock")
@role_required(Role.ADMIN)
@fresh_second_factor_required
def unlock(identity_id: uuid.UUID) -> Response:
    if ActionForm().validate_on_submit():
        identity = login.unlock(uow(), _account(), identity_id)
        flash(f"{identity.email} can log in again.", "success")
    return redirect(url_for("dashboards.admin"))
