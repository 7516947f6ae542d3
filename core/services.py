"""The external services a process talks to, built once from Settings.

Each has a real implementation and an embedded one (SMTP vs .eml files, Redis vs memory), chosen
by URL; the code that uses them never knows which it got.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.adapters.audit_sink import AuditSink, build_sink
from core.adapters.cache import Cache, build_cache
from core.adapters.files import FileStore, MemoryFileStore, build_file_store
from core.adapters.liveness import ProcessLiveness
from core.adapters.mail import Mailer, build_mailer
from core.adapters.notifications import NotificationBus, build_bus
from core.adapters.rate_counter import MemoryRateCounter, RateCounter, RedisRateCounter
from core.adapters.redis_link import RedisLink
from core.adapters.webhooks import WebhookSender, WebhookSink
from core.caching import CachedRegions
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
    # The in-memory twin unless built from settings (tests that assemble services by hand).
    files: FileStore = field(default_factory=MemoryFileStore)
    # The external audit sink (AUDIT_SINK_URL), if one is configured.
    audit_sink: AuditSink | None = None
    rate_counter: RateCounter = field(default_factory=MemoryRateCounter)
    # A worker process's sign of life to the others (PostgreSQL), set once the process is up.
    liveness: ProcessLiveness | None = None
    # The cache's named regions on `cache`; they hear of every commit on `db` (core.caching).
    regions: CachedRegions = field(init=False)

    def __post_init__(self) -> None:
        self.regions = CachedRegions(self.cache)
        self.regions.invalidate_on_commit(self.db)

    @classmethod
    def build(cls, settings: Settings, *, db: Database | None = None,
              statement_timeout_ms: int | None = None) -> Services:
        """`statement_timeout_ms`: this process's bound on database statements; the web's
        (`settings.database_statement_timeout_ms`) unless given."""
        if statement_timeout_ms is None:
            statement_timeout_ms = settings.database_statement_timeout_ms
        # One Redis client (and pool) for the cache and the rate limits.
        link = RedisLink(settings.redis_url) if settings.redis_url else None
        return cls(
            settings=settings,
            db=db or Database(settings.database_url, statement_timeout_ms=statement_timeout_ms),
            cache=build_cache(settings.redis_url, link=link),
            rate_counter=RedisRateCounter(link) if link else MemoryRateCounter(),
            mailer=build_mailer(settings.smtp_url, settings.instance_path,
                                log_links=not settings.is_production),
            notifications=build_bus(settings.redis_url),
            webhooks=WebhookSender(secret=settings.webhook_secret,
                                   allow_private=settings.webhook_allow_private),
            files=build_file_store(settings.storage_url, settings.instance_path),
            audit_sink=build_sink(settings.audit_sink_url, settings.audit_sink_secret,
                                  settings.audit_sink_ca_file),
        )
