"""Errors that carry a message meant for the person who caused them."""

from __future__ import annotations


class DomainError(Exception):
    """A rule said no. `str(error)` is safe and useful to show."""


class ValidationFailed(DomainError):
    """Input that cannot be accepted, with one message per field."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


class NotFound(DomainError):
    """Nothing there, or nothing this caller may see (never say which)."""


class Forbidden(DomainError):
    """The caller is known but not allowed."""
