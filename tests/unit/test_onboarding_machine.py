"""The onboarding state machine, by property: whatever a person does, in any order, it never
skips a stage and never completes without every required stage's data valid."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import DomainError
from core.onboarding import schemas, service
from core.onboarding.stages import (
    FLOWS,
    TRANSITIONS,
    Stage,
    allowed,
    flow,
    is_forward,
    next_stage,
)
from core.scoping import TenantContext
from core.uow import UnitOfWork
from tests.support.factories import practice
from tests.support.flows import PERSONAL_INFO, PROFESSIONAL_INFO

GOOD = {
    Stage.PERSONAL_INFO: PERSONAL_INFO,
    Stage.PROFESSIONAL_INFO: PROFESSIONAL_INFO,
    Stage.TERMS: {"accept_terms": True, "accept_privacy": True},
}
BAD = {
    "full_name": "", "phone": "12", "time_zone": "Nowhere/Land", "preferred_language": "zz",
    "licence_number": "!", "licence_jurisdiction": "", "specialties": ["astrology"],
    "years_in_practice": "-3", "practice_display_name": "", "accept_terms": False,
    "accept_privacy": False,
}


def test_the_table_only_moves_one_stage_forward_or_back() -> None:
    for role, table in TRANSITIONS.items():
        assert set(table) == set(FLOWS[role])
        for source, targets in table.items():
            forward = {t for t in targets if is_forward(role, source, t)}
            assert forward <= {next_stage(role, source)}, (role, source, forward)
            assert source not in targets
        assert table[Stage.COMPLETED] == frozenset()
    assert Stage.PROFESSIONAL_INFO not in FLOWS["client"]


def _values(stage: Stage) -> st.SearchStrategy[dict]:
    """Per field of the stage: a good value, a bad value, or nothing at all."""
    names = schemas.field_names(stage)
    choices = {name: st.sampled_from([GOOD.get(stage, {}).get(name)] * 8 + [BAD[name], None])
               for name in names}
    return st.fixed_dictionaries({}, optional=choices).map(
        lambda d: {k: v for k, v in d.items() if v is not None})


def _operation(role: str) -> st.SearchStrategy[tuple]:
    """(kind, target stage, what is typed on each stage's page)."""
    stages = list(flow(role))
    typed = st.fixed_dictionaries({s: _values(s) for s in stages if s in schemas.FIELDS})
    return st.tuples(st.sampled_from(["next", "next", "move", "draft"]),
                     st.sampled_from(stages), typed)


@pytest.mark.parametrize("role", ["therapist", "client"])
def test_random_sequences_never_skip_and_never_complete_invalid(role, app, db) -> None:
    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    account = harbour.therapist if role == "therapist" else harbour.client
    tenant = TenantContext.of(account.tenant_id)
    stages = flow(role)

    @settings(max_examples=120, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(st.lists(_operation(role), max_size=20))
    def run(operations):
        with UnitOfWork(db, tenant=tenant) as uow:
            progress = service.of_account(uow.session, account.id)
            progress.stage, progress.data, progress.completed_at = Stage.STARTED, {}, None
            progress.terms_version = None
            uow.commit()
        for kind, stage, typed in operations:
            with UnitOfWork(db, tenant=tenant) as uow:
                before = Stage(service.of_account(uow.session, account.id).stage)
                on_page = typed.get(before)  # what the current stage's page holds
                try:
                    if kind == "draft":
                        service.save_draft(uow, account.id, stage, typed.get(stage, {}), None)
                    elif kind == "next":
                        service.move(uow, account.id, next_stage(role, before), values=on_page)
                    else:
                        service.move(uow, account.id, stage, values=on_page)
                    uow.commit()
                except (DomainError, schemas.DraftRejected):
                    uow.rollback()
                after_progress = service.of_account(uow.session, account.id)
                after = Stage(after_progress.stage)
                assert after in stages
                if stages.index(after) > stages.index(before):
                    assert stages.index(after) == stages.index(before) + 1, "skipped a stage"
                    assert allowed(role, before, after)
                if after_progress.completed_at is not None:
                    assert after == Stage.COMPLETED
                    assert after_progress.terms_version == schemas.TERMS_VERSION
                    for data_stage in (s for s in stages if s in schemas.FIELDS):
                        assert schemas.is_valid(
                            data_stage, service.stage_data(after_progress, data_stage)), \
                            f"completed with invalid {data_stage}"
                if after == Stage.COMPLETED:
                    assert after_progress.completed_at is not None
                    completions.append(len(operations))

    completions: list[int] = []
    run()
    # The property means something only if random play does reach the end sometimes.
    assert completions, "no generated sequence completed onboarding"
