"""The database role docker-compose gives the app really is walled in by row-level security:
the init script runs against this machine's PostgreSQL, the migrations run as that role, and
the role sees nothing a transaction's practice setting does not allow."""

from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest
import sqlalchemy as sa

from core.config import normalise_database_url
from tests.conftest import TEST_DATABASE_URL, reset_schema
from tests.integration.test_deploy_files import APP_ROLE_SQL

pytestmark = pytest.mark.integration


@pytest.fixture
def compose_database():
    if not TEST_DATABASE_URL or not shutil.which("psql"):
        pytest.skip("needs TEST_DATABASE_URL and psql (CI has both)")
    admin_url = sa.engine.make_url(normalise_database_url(TEST_DATABASE_URL))
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        taken = connection.execute(sa.text(
            "SELECT (SELECT count(*) FROM pg_roles WHERE rolname = 'platform') + "
            "(SELECT count(*) FROM pg_database WHERE datname = 'platform')")).scalar()
        if taken:
            pytest.skip("a 'platform' role or database already exists on this server")
        connection.execute(sa.text("CREATE DATABASE platform"))
    psql_url = admin_url.set(drivername="postgresql", database="platform")
    subprocess.run(["psql", "-v", "ON_ERROR_STOP=1", "-q", "-f", str(APP_ROLE_SQL),
                    psql_url.render_as_string(hide_password=False)], check=True)
    app_url = admin_url.set(username="platform", password="platform", database="platform")
    yield app_url.render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(sa.text("DROP DATABASE IF EXISTS platform WITH (FORCE)"))
        connection.execute(sa.text("DROP ROLE IF EXISTS platform"))
    admin.dispose()


def test_the_compose_app_role_runs_migrations_and_is_walled_in(compose_database):
    reset_schema(compose_database)  # alembic upgrade head, as that role (the release step)
    engine = sa.create_engine(compose_database)
    tenant_a, tenant_b = uuid.uuid4(), uuid.uuid4()
    with engine.begin() as connection:
        flags = connection.execute(sa.text(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")).one()
        assert tuple(flags) == (False, False)
        connection.execute(sa.text("SELECT set_config('app.all_tenants', 'on', true)"))
        for tenant in (tenant_a, tenant_b):
            connection.execute(sa.text(
                "INSERT INTO tenants (id, slug, name, status, plan, settings, created_at) "
                "VALUES (:id, :slug, 'P', 'active', 'standard', '{}', now())"),
                {"id": tenant, "slug": str(tenant)[:8]})
            connection.execute(sa.text(
                "INSERT INTO invitations (id, tenant_id, email, invited_by_account_id, "
                "created_at, expires_at) VALUES (:id, :t, 'x@example.com', :id, now(), now())"),
                {"id": uuid.uuid4(), "t": tenant})
    with engine.begin() as connection:
        # The owner itself, with no practice set: nothing (FORCE ROW LEVEL SECURITY).
        assert connection.execute(sa.text("SELECT count(*) FROM invitations")).scalar() == 0
        connection.execute(sa.text("SELECT set_config('app.tenant_id', :t, true)"),
                           {"t": str(tenant_a)})
        seen = connection.execute(sa.text("SELECT tenant_id FROM invitations")).scalars().all()
        assert seen == [tenant_a]
    engine.dispose()
