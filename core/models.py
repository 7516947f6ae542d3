"""Imports every model, so `Base.metadata` is complete for Alembic and the tests."""

from core.audit.models import AuditEntry
from core.db import Base
from core.events.models import DeadLetter, Event, HandlerRun
from core.notifications.models import Notification

__all__ = ["AuditEntry", "Base", "DeadLetter", "Event", "HandlerRun", "Notification"]
