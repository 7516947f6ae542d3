"""Who must have a second factor, and what a new session must do first.

A practice's therapists (its owners) may require one of every therapist of the practice, or of
everyone in it, clients included; platform admins always need one in production. The rule is
applied when a session starts (`gate_for`): a person under it without a factor is led to enrol,
and a person with one proves it before anything else.
"""

from __future__ import annotations

import uuid
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core.errors import Forbidden, NotFound, ValidationFailed
from core.events.types import EventType
from core.identity.directory import accounts_of
from core.identity.models import Account, MfaFactor, Role
from core.tenancy.models import Tenant
from core.uow import UnitOfWork

SETTING = "second_factor"


class PracticePolicy(StrEnum):
    NONE = "none"
    THERAPISTS = "therapists"
    EVERYONE = "everyone"


class Gate(StrEnum):
    CHALLENGE = "challenge"
    ENROL = "enrol"


def has_second_factor(session: Session, identity_id: uuid.UUID) -> bool:
    return session.execute(
        sa.select(sa.literal(1)).where(MfaFactor.identity_id == identity_id,
                                       MfaFactor.confirmed_at.is_not(None)).limit(1)
    ).first() is not None


def practice_policy(tenant: Tenant | None) -> PracticePolicy:
    raw = (tenant.settings or {}).get(SETTING) if tenant is not None else None
    try:
        return PracticePolicy(raw or PracticePolicy.NONE)
    except ValueError:
        return PracticePolicy.NONE


def required_for(session: Session, identity_id: uuid.UUID, *, production: bool) -> bool:
    """Whether a policy requires a second factor of this person, in any of their roles."""
    accounts = accounts_of(session, identity_id)
    if production and any(a.role == Role.ADMIN for a in accounts):
        return True
    tenant_ids = {a.tenant_id for a in accounts if a.tenant_id is not None}
    if not tenant_ids:
        return False
    tenants = {t.id: t for t in session.execute(
        sa.select(Tenant).where(Tenant.id.in_(tenant_ids))).scalars()}
    for account in accounts:
        policy = practice_policy(tenants.get(account.tenant_id)) if account.tenant_id else None
        if policy == PracticePolicy.EVERYONE or (
                policy == PracticePolicy.THERAPISTS and account.role == Role.THERAPIST):
            return True
    return False


def gate_for(session: Session, identity_id: uuid.UUID, *, production: bool) -> Gate | None:
    if has_second_factor(session, identity_id):
        return Gate.CHALLENGE
    if required_for(session, identity_id, production=production):
        return Gate.ENROL
    return None


def set_practice_policy(uow: UnitOfWork, therapist: Account, policy: str) -> Tenant:
    """A practice's therapist requires a second factor of its therapists (or of everyone)."""
    if therapist.role != Role.THERAPIST or therapist.tenant_id is None:
        raise Forbidden("Only the practice's therapists can change its settings.")
    try:
        chosen = PracticePolicy(policy)
    except ValueError:
        raise ValidationFailed({"policy": "Choose who needs a second factor."}) from None
    tenant = uow.session.get(Tenant, therapist.tenant_id)
    if tenant is None:
        raise NotFound("There is nothing at this address.")
    tenant.settings = {**(tenant.settings or {}), SETTING: str(chosen)}
    uow.record(EventType.PRACTICE_SETTINGS_CHANGED, tenant_id=tenant.id,
               actor_account_id=therapist.id, subject=f"tenant:{tenant.id}",
               payload={SETTING: str(chosen)})
    return tenant
