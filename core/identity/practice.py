"""A practice's own settings, changed by its therapists: the name clients see, and the public
join link (on or off, and a new one that makes the old one stop working)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from core.errors import Forbidden, NotFound
from core.events.types import EventType
from core.identity import sessions
from core.identity.models import Account, Role
from core.tenancy.models import Tenant
from core.tenancy.service import MAX_NAME
from core.text import clean_name
from core.uow import UnitOfWork


@dataclass(frozen=True)
class JoinLink:
    enabled: bool
    # None until the therapist first makes a new link: /join/<slug> works until then.
    code: str | None

    def path(self, slug: str) -> str:
        return f"/join/{slug}/{self.code}" if self.code else f"/join/{slug}"


def join_link(tenant: Tenant) -> JoinLink:
    settings = tenant.settings or {}
    return JoinLink(enabled=settings.get("join_link_enabled", True) is not False,
                    code=settings.get("join_code") or None)


def accepts_join_code(tenant: Tenant, code: str | None) -> bool:
    link = join_link(tenant)
    return link.enabled and (link.code or None) == (code or None)


def _owned_practice(uow: UnitOfWork, therapist: Account) -> Tenant:
    if therapist.role != Role.THERAPIST or therapist.tenant_id is None:
        raise Forbidden("Only the practice's therapists can change its settings.")
    tenant = uow.session.get(Tenant, therapist.tenant_id)
    if tenant is None:
        raise NotFound("There is nothing at this address.")
    return tenant


def update_practice(uow: UnitOfWork, therapist: Account, view: sessions.SessionView,
                    *, name: str, join_link_enabled: bool) -> Tenant:
    tenant = _owned_practice(uow, therapist)
    clean = clean_name(name, "name", "the practice's name", max_length=MAX_NAME)
    tenant.name = clean
    tenant.settings = {**(tenant.settings or {}), "display_name": clean,
                       "join_link_enabled": join_link_enabled}
    uow.record(EventType.PRACTICE_SETTINGS_CHANGED, tenant_id=tenant.id,
               actor_account_id=therapist.id, subject=f"tenant:{tenant.id}",
               payload={"name": clean, "join_link_enabled": join_link_enabled})
    return tenant


def regenerate_join_link(uow: UnitOfWork, therapist: Account) -> Tenant:
    tenant = _owned_practice(uow, therapist)
    tenant.settings = {**(tenant.settings or {}), "join_code": secrets.token_urlsafe(9)}
    uow.record(EventType.PRACTICE_SETTINGS_CHANGED, tenant_id=tenant.id,
               actor_account_id=therapist.id, subject=f"tenant:{tenant.id}",
               payload={"join_link": "regenerated"})
    return tenant
