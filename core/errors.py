"""Errors that carry a message meant for the person who caused them.

Core raises these; the web tier maps each kind to its status once (web/errors.py), so a view
never has to catch one to avoid a 500.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A rule said no. `str(error)` is safe and useful to show."""

    def details(self) -> dict[str, Any]:
        """Extra facts for an API client (e.g. the server's copy after a conflict)."""
        return {}


class ValidationFailed(DomainError):
    """Input that cannot be accepted, with one message per field."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors

    def details(self) -> dict[str, Any]:
        return {"fields": self.errors}


class Unauthenticated(DomainError):
    """Who is asking could not be established (wrong credentials, no session)."""


class NotFound(DomainError):
    """Nothing there, or nothing this caller may see (never say which)."""


class Forbidden(DomainError):
    """The caller is known but not allowed."""


class Conflict(DomainError):
    """The change collides with another made meanwhile; nothing was overwritten."""


class Locked(DomainError):
    """The thing exists but is locked for now (a login after too many failures)."""


class RateLimited(DomainError):
    """Asked again too soon; `retry_after_seconds` says when it is worth asking again."""

    def __init__(self, message: str, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds
