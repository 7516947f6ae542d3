"""A statement inside a tenant switch (`within_tenant`) that the database gives up on — here the
server cancels an INSERT stuck behind a lock, as it would one stuck behind a black-holed
network — answers 503 "temporarily unavailable", not a 500: the switch back must not hide the
database's error behind one of its own. (The proof's chaos found this as one `/signup` 500 while
the database was black-holed.)"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from core.db import Database
from core.identity.models import Identity
from core.scoping import system_session
from tests.support.apps import make_app
from tests.support.flows import signup_therapist
from web.errors import RETRY_AFTER_SECONDS

pytestmark = pytest.mark.integration


@pytest.fixture
def impatient_db(db, database_url):
    if db.dialect != "postgresql":
        pytest.skip("needs PostgreSQL (its statement timeout and table locks)")
    database = Database(database_url, statement_timeout_ms=300)
    yield database
    database.dispose()


def test_a_sign_up_whose_account_insert_is_cancelled_is_a_503(impatient_db, db, settings):
    client = make_app(settings, impatient_db).test_client()
    with db.engine.connect() as holder:
        # Reads go on; the new account's INSERT waits, and is cancelled at the timeout.
        holder.execute(sa.text("LOCK TABLE accounts IN SHARE MODE"))
        response = signup_therapist(client, email="blocked@example.com")
        holder.rollback()

    assert response.status_code == 503, response.get_data(as_text=True)[:400]
    assert response.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert "Temporarily unavailable" in response.get_data(as_text=True)
    with system_session(db) as session:
        assert session.execute(sa.select(Identity).where(
            Identity.email == "blocked@example.com")).first() is None

    # Nothing was left half-done: the same sign-up goes through once the lock is gone.
    again = signup_therapist(client, email="blocked@example.com")
    assert again.status_code == 200 and "Check your e-mail" in again.get_data(as_text=True)
    with system_session(db) as session:
        assert session.execute(sa.select(Identity).where(
            Identity.email == "blocked@example.com")).first() is not None
