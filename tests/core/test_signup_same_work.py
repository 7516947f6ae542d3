"""Sign-up answers the same for a known address and a new one, and does the same work for both:
otherwise the time it takes tells an attacker which addresses have an account."""

from __future__ import annotations

import re
from collections import Counter

import sqlalchemy as sa

from core.identity import signup
from core.identity.models import Identity
from core.scoping import system_session
from core.tenancy.models import Tenant, TenantStatus
from core.uow import UnitOfWork
from tests.support.flows import PASSWORD

WRITE = re.compile(r"^\s*(INSERT INTO|UPDATE|DELETE FROM)\s+\"?(\w+)", re.IGNORECASE)


def _writes_during(db, action) -> Counter:
    writes: Counter = Counter()

    def record(_conn, _cursor, statement, _params, _context, _many):
        match = WRITE.match(statement)
        if match:
            writes[(match.group(1).upper(), match.group(2))] += 1

    sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        with UnitOfWork(db) as uow:
            outcome = action(uow)
            uow.commit()
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)
    return outcome, writes


def _therapist(email):
    return lambda uow: signup.signup_therapist(uow, practice_name="Harbour", display_name="Ada",
                                                email=email, password=PASSWORD)


def test_a_therapist_sign_up_does_the_same_writes_for_a_known_address(db):
    new, writes_new = _writes_during(db, _therapist("ada@harbour.example"))
    known, writes_known = _writes_during(db, _therapist("ada@harbour.example"))
    assert (new, known) == (signup.SignupOutcome.CREATED, signup.SignupOutcome.ALREADY_REGISTERED)
    # The same rows are written (then undone) for the known address; only the events differ:
    # one notice to the owner instead of the new account's events.
    assert {k: v for k, v in writes_known.items() if k[1] != "events"} == \
        {k: v for k, v in writes_new.items() if k[1] != "events"}
    with system_session(db) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Identity)) == 1
        assert session.scalar(sa.select(sa.func.count()).select_from(Tenant)) == 1


def test_a_client_sign_up_does_the_same_writes_for_a_known_address(db):
    _writes_during(db, _therapist("ada@harbour.example"))
    with system_session(db) as session:
        tenant = session.execute(sa.select(Tenant)).scalar_one()
        tenant.status = TenantStatus.ACTIVE
        session.commit()
        slug = tenant.slug

    def join(email):
        return lambda uow: signup.signup_client(uow, tenant_slug=slug, display_name="Bo",
                                                 email=email, password=PASSWORD)

    _new, writes_new = _writes_during(db, join("bo@example.com"))
    known, writes_known = _writes_during(db, join("ada@harbour.example"))
    assert known == signup.SignupOutcome.ALREADY_REGISTERED
    assert {k: v for k, v in writes_known.items() if k[1] != "events"} == \
        {k: v for k, v in writes_new.items() if k[1] != "events"}
