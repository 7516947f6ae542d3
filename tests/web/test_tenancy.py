"""Practices never see each other's data: the ORM scope, the route guard and, on PostgreSQL,
row-level security as the application's own database role."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from core import clock
from core.audit import writer
from core.audit.models import AuditEntry
from core.config import normalise_database_url
from core.db import Database
from core.identity.models import Account, Invitation
from core.privacy.models import LegalHold
from core.scoping import TenantContext, TenantViolation, set_context, system_session
from core.uow import UnitOfWork
from tests.conftest import TEST_DATABASE_URL, make_settings
from tests.support.apps import make_app
from tests.support.factories import practice
from tests.support.flows import login, post_form


@pytest.fixture
def two_practices(app, db):
    return practice(db, "Harbour Counselling", slug_hint="harbour"), practice(
        db, "Elm Street", slug_hint="elm")


def test_queries_are_scoped_by_the_session_tenant(two_practices, db):
    harbour, elm = two_practices
    with UnitOfWork(db, tenant=TenantContext.of(harbour.tenant.id)) as uow:
        accounts = uow.session.execute(sa.select(Account)).scalars().all()
        assert {a.tenant_id for a in accounts} == {harbour.tenant.id}
        # A query that names the other tenant explicitly still finds nothing.
        assert uow.session.execute(sa.select(Invitation).where(
            Invitation.tenant_id == elm.tenant.id)).scalars().all() == []
        assert uow.session.get(Account, elm.client.id) is None
    with UnitOfWork(db) as anonymous:
        assert anonymous.session.execute(sa.select(Account)).scalars().all() == []
    with UnitOfWork(db, tenant=TenantContext.system()) as system:
        assert len(system.session.execute(sa.select(Account)).scalars().all()) == 4


def test_writing_into_another_tenant_is_refused(two_practices, db):
    harbour, elm = two_practices
    with UnitOfWork(db, tenant=TenantContext.of(harbour.tenant.id)) as uow:
        uow.session.add(Invitation(tenant_id=elm.tenant.id, email="x@example.com",
                                   invited_by_account_id=harbour.therapist.id,
                                   created_at=clock.now(), expires_at=clock.now()))
        with pytest.raises(TenantViolation):
            uow.session.flush()
    with UnitOfWork(db, tenant=TenantContext.of(harbour.tenant.id)) as uow:
        # Bulk updates are scoped too: nothing of the other practice changes.
        uow.session.execute(sa.update(Account).values(display_name="renamed"))
        uow.commit()
    with system_session(db) as session:
        names = {a.tenant_id: a.display_name for a in session.execute(sa.select(Account))
                 .scalars()}
    assert names[elm.tenant.id] != "renamed"


def _object_for(param: str, owner) -> str:
    return {
        "account_id": str(owner.client.id),
        "invitation_id": str(owner.invitation.id),
        "id_hash": owner.session_hash,
        "entry_id": str(_an_audit_entry(owner)),
        "hold_id": str(_a_hold(owner)),
    }[param]


def _a_hold(owner) -> uuid.UUID:
    """The practice's legal hold on its client (placed on first use)."""
    with system_session(owner.db) as session:
        found = session.execute(sa.select(LegalHold.id).where(
            LegalHold.tenant_id == owner.tenant.id)).scalar_one_or_none()
        if found is None:
            found = uuid.uuid4()
            session.add(LegalHold(id=found, tenant_id=owner.tenant.id,
                                  account_id=owner.client.id, reason="Court order",
                                  placed_by_account_id=owner.therapist.id,
                                  placed_at=clock.now()))
            session.commit()
        return found


def _an_audit_entry(owner) -> int:
    with system_session(owner.db) as session:
        return session.execute(sa.select(AuditEntry.id).where(
            AuditEntry.tenant_id == owner.tenant.id).limit(1)).scalar_one()


def _routes_with_object_ids(app):
    for rule in app.url_map.iter_rules():
        params = [p for p in rule.arguments if p.endswith(("_id", "_hash"))]
        if params:
            view = app.view_functions[rule.endpoint]
            yield rule, params, getattr(view, "required_roles", ())


def test_cross_tenant_matrix_every_object_route_is_404_with_no_data(client, app, two_practices,
                                                                   worker):
    harbour, elm = two_practices
    harbour.db = elm.db = app.extensions["services"].db
    with UnitOfWork(harbour.db, tenant=TenantContext.system()) as uow:
        writer.write_pending(uow)  # the practices' audit entries, to look at
    assert login(client, elm.therapist_email).status_code == 302
    secrets = [harbour.client.display_name, harbour.invitation.email, harbour.client_email]
    checked = []
    for rule, params, roles in _routes_with_object_ids(app):
        if "admin" in roles:
            continue  # admins belong to no practice; role checks are tested elsewhere
        if rule.endpoint in ("audit.download", "privacy.download"):
            continue  # signed links, one person's own: test_audit_viewer.py, test_privacy.py
        if rule.endpoint.startswith("mfa."):
            continue  # a person's own second factor, in no practice: test_second_factor.py
        path = rule.build({p: _object_for(p, harbour) for p in params})[1]
        method = "POST" if "POST" in rule.methods else "GET"
        if method == "POST":
            response = post_form(client, path, {}, page="/therapist")
        else:
            response = client.get(path)
        body = response.get_data(as_text=True)
        assert response.status_code == 404, f"{method} {path}: {response.status_code}"
        assert not any(secret in body for secret in secrets), f"{path} leaked data"
        checked.append(rule.rule)
        # The same route works for the practice's own objects (the check can fail).
        own = rule.build({p: _object_for(p, elm) for p in params})[1]
        own_response = (post_form(client, own, {}, page="/therapist") if method == "POST"
                        else client.get(own))
        assert own_response.status_code in (200, 302), f"{own}: {own_response.status_code}"
    assert set(checked) >= {"/therapist/clients/<uuid:account_id>",
                            "/therapist/audit/entries/<int:entry_id>",
                            "/therapist/invitations/<uuid:invitation_id>/revoke",
                            "/account/sessions/<id_hash>/revoke"}
    worker.drain()
    with system_session(app.extensions["services"].db) as session:
        denied = session.execute(sa.select(AuditEntry.subject).where(
            AuditEntry.type == "ACCESS_DENIED")).scalars().all()
    assert set(denied) == {f"accounts:{harbour.client.id}",
                           f"invitations:{harbour.invitation.id}",
                           f"audit_entries:{_an_audit_entry(harbour)}",
                           f"legal_holds:{_a_hold(harbour)}"}


APP_ROLE = "platform_app_test_grantee"


@pytest.fixture
def app_role_database(db, database_url):
    """The schema as seen by a non-owner, non-superuser application role (the suite's own role
    owns the tables; this one only has grants on them)."""
    if db.dialect != "postgresql":
        pytest.skip("row-level security is PostgreSQL's")
    admin = sa.create_engine(normalise_database_url(TEST_DATABASE_URL))
    with admin.begin() as connection:
        exists = connection.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"),
                                    {"r": APP_ROLE}).first()
        if not exists:
            connection.execute(sa.text(f"CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS"))
        connection.execute(sa.text(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}"))
        connection.execute(sa.text(
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE}"))
        connection.execute(sa.text(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}"))
    admin.dispose()
    url = sa.engine.make_url(database_url).set(username=APP_ROLE, password=None)
    role_db = Database(url.render_as_string(hide_password=False))
    yield role_db
    role_db.dispose()


def test_row_level_security_hides_other_tenants_from_raw_sql(two_practices, app_role_database,
                                                             database_url, instance_dir):
    harbour, elm = two_practices
    settings = make_settings(database_url, instance_dir)
    app = make_app(settings, app_role_database)

    @app.get("/probe/raw-sql")
    def raw_sql() -> dict:
        from web.context import uow

        rows = uow().session.execute(sa.text(
            "SELECT DISTINCT tenant_id::text FROM accounts "
            "UNION ALL SELECT DISTINCT tenant_id::text FROM invitations")).scalars().all()
        return {"tenants": sorted(set(rows))}

    client = app.test_client()
    assert login(client, harbour.therapist_email).status_code == 302
    body = client.get("/probe/raw-sql").get_json()
    assert body == {"tenants": [str(harbour.tenant.id)]}

    # Outside any request the role sees nothing at all, and cannot write another tenant's rows.
    with app_role_database.engine.begin() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM accounts")).scalar() == 0
        connection.execute(sa.text(
            "SELECT set_config('app.tenant_id', :t, true)"), {"t": str(harbour.tenant.id)})
        with pytest.raises(sa.exc.ProgrammingError, match="row-level security"):
            connection.execute(sa.text(
                "INSERT INTO invitations (id, tenant_id, email, invited_by_account_id, "
                "created_at, expires_at) VALUES (:id, :t, 'x@example.com', :a, now(), now())"),
                {"id": str(uuid.uuid4()), "t": str(elm.tenant.id), "a": str(elm.therapist.id)})


def test_the_application_role_owns_nothing_and_does_not_bypass(app_role_database):
    with app_role_database.engine.connect() as connection:
        flags = connection.execute(sa.text(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")).one()
        assert tuple(flags) == (False, False)
        forced = connection.execute(sa.text(
            "SELECT relname FROM pg_class WHERE relforcerowsecurity AND relrowsecurity "
            "ORDER BY relname")).scalars().all()
    assert forced == ["accounts", "audit_entries", "invitations", "legal_holds", "metric_points",
                      "notifications", "onboarding_progress", "privacy_request_practices",
                      "restricted_records"]


def test_set_context_inside_a_transaction_applies_at_once(two_practices, db):
    harbour, elm = two_practices
    with UnitOfWork(db, tenant=TenantContext.of(harbour.tenant.id)) as uow:
        assert uow.session.get(Account, harbour.client.id) is not None
        set_context(uow.session, TenantContext.of(elm.tenant.id))
        assert uow.session.execute(sa.select(Account.tenant_id)).scalars().all() == [
            elm.tenant.id, elm.tenant.id]
