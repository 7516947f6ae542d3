"""What happens when onboarding completes (and when it stalls): each a handler on its queue."""

from __future__ import annotations

import sqlalchemy as sa

from core import clock
from core.events.types import EventType
from core.identity import links
from core.identity.models import Account, Identity, Role
from core.mail.for_events import send_for_event
from core.notifications.service import notify
from core.onboarding.models import OnboardingProgress
from core.onboarding.stages import Stage
from core.pipeline.handlers import EMAIL_RETRY, HandlerContext, handler
from core.tenancy.models import Tenant, TenantStatus

PRACTICE_READY = "practice_ready"


def _account(ctx: HandlerContext) -> tuple[Account, Identity] | None:
    account = ctx.uow.session.get(Account, ctx.event.actor_account_id) \
        if ctx.event.actor_account_id else None
    identity = ctx.uow.session.get(Identity, account.identity_id) if account else None
    return (account, identity) if account and identity else None


@handler(name="send_welcome_email", queue="email", retry=EMAIL_RETRY,
         events={EventType.ONBOARDING_COMPLETED})
def send_welcome_email(ctx: HandlerContext) -> None:
    found = _account(ctx)
    if found is None:
        return
    account, identity = found
    tenant = ctx.uow.session.get(Tenant, account.tenant_id) if account.tenant_id else None
    template = "welcome_therapist" if account.role == Role.THERAPIST else "welcome_client"
    send_for_event(ctx, template, identity.email, name=account.display_name,
          practice=tenant.name if tenant else "your practice",
          dashboard_link=links.absolute(ctx.services.settings.public_url, links.DASHBOARD))


@handler(name="initialise_tenant", queue="tenants", events={EventType.ONBOARDING_COMPLETED})
def initialise_tenant(ctx: HandlerContext) -> None:
    """The practice goes provisioning → active once its therapist has finished onboarding."""
    if ctx.event.payload.get("role") != Role.THERAPIST or ctx.event.tenant_id is None:
        return
    tenant = ctx.uow.session.get(Tenant, ctx.event.tenant_id, with_for_update=True)
    if tenant is None or tenant.status != TenantStatus.PROVISIONING:
        return  # already active (a redelivery), or suspended meanwhile
    progress = ctx.uow.session.execute(
        sa.select(OnboardingProgress).where(
            OnboardingProgress.account_id == ctx.event.actor_account_id)
    ).scalar_one_or_none()
    personal = (progress.data or {}).get(Stage.PERSONAL_INFO.value, {}) if progress else {}
    professional = (progress.data or {}).get(Stage.PROFESSIONAL_INFO.value, {}) \
        if progress else {}
    tenant.settings = {
        **(tenant.settings or {}),
        "time_zone": personal.get("time_zone") or "UTC",
        "language": personal.get("preferred_language") or "en",
        "display_name": professional.get("practice_display_name") or tenant.name,
        "join_link_enabled": True,
        "client_invitations_enabled": True,
    }
    tenant.status = TenantStatus.ACTIVE
    tenant.activated_at = clock.now()
    ctx.uow.record(EventType.TENANT_INITIALISED, tenant_id=tenant.id,
                   actor_account_id=ctx.event.actor_account_id, subject=f"tenant:{tenant.id}",
                   payload={"slug": tenant.slug})


@handler(name="notify_practice_ready", queue="notifications",
         events={EventType.TENANT_INITIALISED})
def notify_practice_ready(ctx: HandlerContext) -> None:
    if ctx.event.actor_account_id is None:
        return
    tenant = ctx.uow.session.get(Tenant, ctx.event.tenant_id) if ctx.event.tenant_id else None
    notify(ctx.uow, ctx.services.notifications, account_id=ctx.event.actor_account_id,
           tenant_id=ctx.event.tenant_id, kind=PRACTICE_READY,
           title="Your practice is ready",
           body=f"{tenant.name if tenant else 'Your practice'} is active: invite your first "
                "client.",
           link="/therapist", source_event_id=ctx.event.id)


@handler(name="send_onboarding_reminder", queue="email", retry=EMAIL_RETRY,
         events={EventType.ONBOARDING_REMINDER_DUE, EventType.ONBOARDING_REMINDER_REQUESTED})
def send_onboarding_reminder(ctx: HandlerContext) -> None:
    found = _account(ctx)
    if found is None:
        return
    account, identity = found
    progress = ctx.uow.session.execute(
        sa.select(OnboardingProgress).where(OnboardingProgress.account_id == account.id)
    ).scalar_one_or_none()
    if progress is None or progress.completed_at is not None:
        return  # finished since the reminder was due: never remind after completion
    send_for_event(ctx, "onboarding_reminder", identity.email,
          name=account.display_name, stage=Stage(progress.stage).value.replace("_", " ").lower(),
          resume_link=links.absolute(ctx.services.settings.public_url, links.ONBOARDING))

