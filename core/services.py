"""The external services a process talks to, built once from Settings.

Each has a real implementation and an embedded one (SMTP vs .eml files, Redis vs memory), chosen
by URL; the code that uses them never knows which it got.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.adapters.cache import Cache, build_cache
from core.adapters.mail import Mailer, build_mailer
from core.adapters.notifications import NotificationBus, build_bus
from core.adapters.webhooks import WebhookSender, WebhookSink
from core.config import Settings
from core.db import Database


@dataclass
class Services:
    settings: Settings
    db: Database
    cache: Cache
    mailer: Mailer
    notifications: NotificationBus
    webhooks: WebhookSink

    @classmethod
    def build(cls, settings: Settings, *, db: Database | None = None,
              statement_timeout_ms: int | None = None) -> Services:
        """`statement_timeout_ms`: this process's bound on database statements; the web's
        (`settings.database_statement_timeout_ms`) unless given."""
        if statement_timeout_ms is None:
            statement_timeout_ms = settings.database_statement_timeout_ms
        return cls(
            settings=settings,
            db=db or Database(settings.database_url, statement_timeout_ms=statement_timeout_ms),
            cache=build_cache(settings.redis_url),
            mailer=build_mailer(settings.smtp_url, settings.instance_path,
                                log_links=not settings.is_production),
            notifications=build_bus(settings.redis_url),
            webhooks=WebhookSender(secret=settings.webhook_secret,
                                   allow_private=settings.webhook_allow_private),
        )
