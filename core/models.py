"""Imports every model, so `Base.metadata` is complete for Alembic and the tests."""

from core.audit.models import (
    AuditArchive,
    AuditChain,
    AuditCheckpoint,
    AuditEntry,
    AuditExport,
    AuditRetentionPermit,
    AuditSinkCursor,
    AuditVerification,
)
from core.db import Base
from core.events.models import DeadLetter, Event, HandlerRun
from core.identity.models import Account, AuthSession, Identity, Invitation, Token
from core.mail.models import MailLog
from core.metrics.models import MetricPoint, MetricRollup
from core.monitoring.models import HealthIncident, HealthSample
from core.notifications.models import Notification
from core.onboarding.models import OnboardingProgress
from core.privacy.models import (
    AuditPseudonymisePermit,
    LegalHold,
    PrivacyRequest,
    PrivacyRequestPractice,
    RestrictedRecord,
)
from core.tenancy.models import Tenant

__all__ = ["Account", "AuditArchive", "AuditChain", "AuditCheckpoint", "AuditEntry",
           "AuditExport", "AuditPseudonymisePermit", "AuditRetentionPermit", "AuditSinkCursor",
           "AuditVerification", "AuthSession", "Base", "DeadLetter", "Event", "HandlerRun",
           "HealthIncident", "HealthSample", "Identity", "Invitation", "LegalHold", "MailLog",
           "MetricPoint", "MetricRollup", "Notification", "OnboardingProgress", "PrivacyRequest",
           "PrivacyRequestPractice", "RestrictedRecord", "Tenant", "Token"]
