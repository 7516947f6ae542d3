"""Lockouts escalate only while failures keep coming; the owner or an admin resets them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core import clock
from core.errors import DomainError
from core.identity import credentials, login, signup
from core.identity.directory import identity_by_email
from core.identity.models import Account, Identity, TokenPurpose
from core.scoping import TenantContext
from core.uow import UnitOfWork
from tests.support.flows import PASSWORD
from tests.support.tokens import issue_token

EMAIL = "ada@harbour.example"



@pytest.fixture
def person(db):
    with UnitOfWork(db) as uow:
        signup.signup_therapist(uow, practice_name="Harbour", display_name="Ada", email=EMAIL,
                                 password=PASSWORD)
        identity_by_email(uow.session, EMAIL).email_verified_at = clock.now()
        uow.commit()


def _lock_out(db, settings) -> int:
    """Fail until locked; the minutes of the lockout."""
    for _ in range(settings.login_max_failures):
        with UnitOfWork(db) as uow:
            with pytest.raises(DomainError):
                login.login(uow, settings, email=EMAIL, password="wrong wrong wrong")
            uow.commit()
    identity = _identity(db)
    return round((identity.locked_until - clock.now()).total_seconds() / 60)


def _identity(db) -> Identity:
    with UnitOfWork(db) as uow:
        return identity_by_email(uow.session, EMAIL)


def _log_in(db, settings) -> None:
    with UnitOfWork(db) as uow:
        login.login(uow, settings, email=EMAIL, password=PASSWORD)
        uow.commit()


def test_lockouts_in_a_row_double(person, db, settings, moved_clock):
    assert _lock_out(db, settings) == 15
    moved_clock(timedelta(minutes=16))
    assert _lock_out(db, settings) == 30
    moved_clock(timedelta(minutes=31))
    assert _lock_out(db, settings) == 60


def test_a_lockout_long_past_does_not_lengthen_the_next(person, db, settings, moved_clock):
    assert _lock_out(db, settings) == 15
    moved_clock(timedelta(minutes=16))
    assert _lock_out(db, settings) == 30
    moved_clock(timedelta(hours=25))
    assert _lock_out(db, settings) == 15


def test_a_successful_login_resets_the_escalation(person, db, settings, moved_clock):
    _lock_out(db, settings)
    moved_clock(timedelta(minutes=16))
    _log_in(db, settings)
    assert _identity(db).lockouts == 0
    assert _lock_out(db, settings) == 15


def test_an_admin_unlock_resets_the_escalation(person, db, settings, moved_clock):
    _lock_out(db, settings)
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        admin = signup.create_admin(uow, "root@platform.example", PASSWORD + " admin")
        uow.commit()
        login.unlock(uow, uow.session.get(Account, admin.id), _identity(db).id)
        uow.commit()
    assert _identity(db).lockouts == 0 and _identity(db).locked_until is None
    assert _lock_out(db, settings) == 15


def test_a_password_reset_resets_the_escalation(person, db, settings, moved_clock):
    _lock_out(db, settings)
    with UnitOfWork(db) as uow:
        raw = issue_token(uow.session, _identity(db).id, TokenPurpose.RESET_PASSWORD)
        uow.commit()
        credentials.reset_password(uow, raw, "a brand new passphrase here")
        uow.commit()
    identity = _identity(db)
    assert identity.lockouts == 0 and identity.locked_until is None
    assert _lock_out(db, settings) == 15
