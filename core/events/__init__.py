"""Domain events: names, the outbox, handler declarations and the handler runner."""

from core.events.types import EventType

__all__ = ["EventType"]
