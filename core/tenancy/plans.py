"""Plans and each practice's request budget: the plan's, unless a platform admin set one for
the practice. Read through the cache (a change applies on the next request, on every process).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core.caching import PRACTICE_LIMITS, CachedRegions, CacheKey
from core.errors import Forbidden, NotFound, ValidationFailed
from core.events.types import EventType
from core.tenancy.models import Plan, Tenant
from core.uow import UnitOfWork

MAX_PER_MINUTE = 1_000_000


def practice_budget(regions: CachedRegions, session: Session,
                    tenant_id: uuid.UUID) -> int | None:
    """Requests per minute the practice's accounts share (None: no such practice)."""
    budget: int | None = regions.get(*budget_entry(session, tenant_id))
    return budget


def budget_entry(session: Session,
                 tenant_id: uuid.UUID) -> tuple[CacheKey, Callable[[], int | None]]:
    """The practice budget's cache key and how to read it (for a request's prefetch)."""
    def from_database() -> int | None:
        budget: int | None = session.execute(
            sa.select(sa.func.coalesce(Tenant.requests_per_minute, Plan.requests_per_minute))
            .join(Plan, Plan.name == Tenant.plan).where(Tenant.id == tenant_id)
        ).scalar_one_or_none()
        return budget

    return PRACTICE_LIMITS.key(tenant_id), from_database


@dataclass(frozen=True)
class PracticeBudget:
    plan: Plan
    override: int | None

    @property
    def per_minute(self) -> int:
        return self.override or self.plan.requests_per_minute


def budget_of(session: Session, tenant: Tenant) -> PracticeBudget:
    plan = session.get(Plan, tenant.plan)
    if plan is None:
        raise NotFound("This practice's plan does not exist.")
    return PracticeBudget(plan, tenant.requests_per_minute)


def all_plans(session: Session) -> Sequence[Plan]:
    return session.execute(sa.select(Plan).order_by(Plan.requests_per_minute)).scalars().all()


def set_practice_budget(uow: UnitOfWork, *, actor_account_id: uuid.UUID, actor_role: str,
                        tenant_id: uuid.UUID, per_minute: int | None) -> Tenant:
    """A platform admin sets the practice's requests per minute (None: back to its plan's)."""
    if actor_role != "admin":
        raise Forbidden("Only platform admins can change a practice's limits.")
    if per_minute is not None and not 1 <= per_minute <= MAX_PER_MINUTE:
        raise ValidationFailed({"requests_per_minute": f"Enter a whole number from 1 to "
                                                       f"{MAX_PER_MINUTE:,}, or leave it empty "
                                                       "for the plan's."})
    tenant = uow.session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("There is nothing at this address.")
    before = tenant.requests_per_minute
    if before == per_minute:
        return tenant
    tenant.requests_per_minute = per_minute
    uow.record(EventType.PRACTICE_LIMIT_CHANGED, tenant_id=tenant.id,
               actor_account_id=actor_account_id, subject=f"tenant:{tenant.id}",
               payload={"plan": tenant.plan, "from": before, "to": per_minute})
    return tenant
