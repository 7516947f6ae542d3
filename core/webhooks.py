"""Outbound webhooks (the original's "external sync"): business events delivered to the URL an
operator configured, through the pipeline (retries, dead letters). Receivers check signatures
with `core.adapters.webhooks.verify`."""

from __future__ import annotations

from core.adapters.webhooks import WebhookRefused
from core.config import Settings
from core.events.types import EventType
from core.pipeline.handlers import WEBHOOK_RETRY, HandlerContext, handler


def _wanted(settings: Settings, event_type: str) -> bool:
    return bool(settings.webhook_url) and event_type in settings.webhook_events


@handler(name="deliver_webhook", queue="webhooks", events=set(EventType), retry=WEBHOOK_RETRY,
         when=_wanted, gives_up_on=(WebhookRefused,))
def deliver_webhook(ctx: HandlerContext) -> None:
    url = ctx.services.settings.webhook_url
    assert url is not None  # guaranteed by _wanted
    ctx.services.webhooks.deliver(url, ctx.event)
