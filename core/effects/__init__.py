"""Every side effect of every domain event, in one table.

The workers turn each entry into an actor on its queue; the publisher asks `handlers_for` which
of them an event needs. Audit entries are not listed: every event gets one, through the batched
audit writer.
"""

from __future__ import annotations

from core.audit.exports import write_audit_export
from core.audit.integrity import alert_admins_of_audit_failure
from core.config import Settings
from core.effects import onboarding
from core.identity import mails, mfa_mails
from core.mail.test_email import send_test_email
from core.monitoring.alerts import email_admins_of_health, notify_admins_of_health
from core.notifications.handlers import (
    notify_inviter_of_renewal_request,
    notify_therapists_of_new_client,
)
from core.pipeline.handlers import Handler
from core.privacy import erasure as privacy_erasure
from core.privacy import export as privacy_export
from core.webhooks import deliver_webhook

HANDLERS: tuple[Handler, ...] = (
    mails.send_verification_email,
    mails.send_signup_exists_email,
    mails.send_password_reset_email,
    mails.send_password_changed_email,
    mails.send_lockout_email,
    mails.send_invitation_email,
    mails.send_set_password_email,
    mails.send_email_change_link,
    mails.send_email_changed_notice,
    mfa_mails.send_mfa_enrolled_email,
    mfa_mails.send_mfa_removed_email,
    mfa_mails.send_recovery_code_used_email,
    onboarding.send_welcome_email,
    onboarding.send_onboarding_reminder,
    onboarding.initialise_tenant,
    onboarding.notify_practice_ready,
    send_test_email,
    notify_therapists_of_new_client,
    notify_inviter_of_renewal_request,
    deliver_webhook,
    alert_admins_of_audit_failure,
    write_audit_export,
    notify_admins_of_health,
    email_admins_of_health,
    privacy_export.build_personal_export,
    privacy_export.send_personal_export_email,
    privacy_erasure.send_erasure_scheduled_email,
    privacy_erasure.send_erasure_reminder_email,
)

_BY_NAME = {h.name: h for h in HANDLERS}
assert len(_BY_NAME) == len(HANDLERS), "handler names must be unique"


def handlers_for(event_type: str, settings: Settings) -> list[Handler]:
    return [h for h in HANDLERS if h.wants(event_type, settings)]


def handler_named(name: str) -> Handler:
    return _BY_NAME[name]
