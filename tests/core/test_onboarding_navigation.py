"""Onboarding navigation: the one place that says where a person goes next (pages and API)."""

from __future__ import annotations

import uuid

import pytest

from core.errors import ValidationFailed
from core.identity import signup
from core.identity.directory import identity_by_email
from core.onboarding import navigation, service
from core.onboarding.navigation import GoTo, ShowStage
from core.onboarding.stages import Stage
from core.scoping import TenantContext
from core.uow import UnitOfWork
from tests.support.flows import PASSWORD, PERSONAL_INFO, PROFESSIONAL_INFO

TERMS = {"accept_terms": True, "accept_privacy": True}


@pytest.fixture
def account(db) -> uuid.UUID:
    """A therapist who has just signed up: onboarding at its first stage."""
    with UnitOfWork(db) as uow:
        signup.signup_therapist(uow, practice_name="Harbour", display_name="Ada",
                                email="ada@harbour.example", password=PASSWORD)
        uow.commit()
        return identity_by_email(uow.session, "ada@harbour.example").id


def _submit(db, account, slug, values=None, *, action="continue", version=None):
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        if version is None:
            version = navigation.progress_of(uow.session, account).version
        outcome = navigation.submit_stage(uow, account, slug, action=action,
                                          values=values or {}, version=version, ip="192.0.2.9")
        uow.commit()
        return outcome


def _stage(db, account) -> str:
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        return navigation.progress_of(uow.session, account).stage


def test_no_skipping_ahead(db, account):
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        outcome = navigation.open_stage(uow.session, account, "terms")
    assert outcome == GoTo(Stage.STARTED, navigation.FINISH_EARLIER_STEP)


def test_a_stage_moves_forward_only_once_valid_and_keeps_what_was_typed(db, account):
    assert _submit(db, account, "started") == GoTo(Stage.PERSONAL_INFO)
    shown = _submit(db, account, "personal-info", {**PERSONAL_INFO, "phone": "x"})
    assert isinstance(shown, ShowStage) and set(shown.errors) == {"phone"}
    assert shown.values["phone"] == "x"
    assert isinstance(shown.refusal, ValidationFailed)
    assert _submit(db, account, "personal-info", PERSONAL_INFO) == GoTo(Stage.PROFESSIONAL_INFO)


def test_a_form_without_its_version_saves_nothing(db, account):
    _submit(db, account, "started")
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        outcome = navigation.submit_stage(uow, account, "personal-info", action="continue",
                                          values=PERSONAL_INFO, version=None, ip=None)
        uow.commit()
    assert isinstance(outcome, ShowStage) and outcome.notice == navigation.NO_VERSION
    assert _stage(db, account) == Stage.PERSONAL_INFO


def test_another_tabs_save_in_between_is_a_conflict_that_overwrites_nothing(db, account):
    _submit(db, account, "started")
    stale = _version(db, account)
    _submit(db, account, "personal-info", {"full_name": "From tab one"}, action="later")
    shown = _submit(db, account, "personal-info", {"full_name": "From tab two"}, version=stale)
    assert isinstance(shown, ShowStage) and shown.notice == navigation.CHANGED_ELSEWHERE
    assert shown.values == {"full_name": "From tab two"}  # what they typed is on the page
    assert service.stage_data(shown.progress, Stage.PERSONAL_INFO)["full_name"] == "From tab one"


def _version(db, account) -> int:
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        return navigation.progress_of(uow.session, account).version


def test_later_leaves_for_the_dashboard_and_the_gate_lets_them_through(db, regions, account):
    _submit(db, account, "started")
    assert _submit(db, account, "personal-info", {"full_name": "Ada"}, action="later") == GoTo(
        None, navigation.SAVED_FOR_LATER, "success", deferred=True)
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        assert navigation.detour(uow, regions, account, deferred=True) is None
        assert navigation.detour(uow, regions, account, deferred=False) == GoTo(
            Stage.PERSONAL_INFO)
        assert navigation.unfinished_stage(uow.session, regions, account) == Stage.PERSONAL_INFO


def test_finishing_all_at_once_follows_the_same_rules(db, regions, account):
    with UnitOfWork(db, tenant=TenantContext.system()) as uow, pytest.raises(
            service.StageIncomplete) as incomplete:
        navigation.finish(uow, account, {"personal-info": PERSONAL_INFO,
                                         "professional-info": {}, "terms": TERMS},
                          version=_version(db, account), ip=None)
    assert incomplete.value.stage == Stage.PROFESSIONAL_INFO
    assert incomplete.value.details()["stage"] == "professional-info"
    with UnitOfWork(db, tenant=TenantContext.system()) as uow, pytest.raises(
            service.VersionConflict) as conflict:
        navigation.finish(uow, account, {}, version=99, ip=None)
    assert conflict.value.details()["current"]["version"] == 1
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        done = navigation.finish(uow, account, {"personal-info": PERSONAL_INFO,
                                                "professional-info": PROFESSIONAL_INFO,
                                                "terms": TERMS},
                                 version=_version(db, account), ip="192.0.2.9")
        uow.commit()
    assert done.completed_at is not None and done.terms_ip == "192.0.2.9"
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        assert navigation.detour(uow, regions, account, deferred=False) is None
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        assert navigation.status(uow.session, regions, account)["complete"]


def test_finish_refuses_answers_for_a_stage_that_is_not_in_the_flow(db, account):
    with UnitOfWork(db, tenant=TenantContext.system()) as uow, pytest.raises(
            ValidationFailed) as refused:
        navigation.finish(uow, account, {"nowhere": {}}, version=1, ip=None)
    assert set(refused.value.errors) == {"nowhere"}
