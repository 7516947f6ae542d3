"""Text from outside, made storable: PostgreSQL text and JSONB hold no NUL or lone surrogate."""

from __future__ import annotations

import unicodedata
from typing import Any

from core.errors import ValidationFailed

REPLACEMENT = "\ufffd"
# Control, format, surrogate and private-use characters: invisible or unstorable in a name.
_UNFIT_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co"})


def storable(value: Any) -> Any:
    """Replace NUL and lone surrogates in every string of a JSON-like value (dicts, lists,
    strings): PostgreSQL stores neither."""
    if isinstance(value, str):
        if not value.isascii():
            value = value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
        return value.replace("\x00", REPLACEMENT)
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    return value


def storable_text(value: str | None, max_length: int) -> str | None:
    return storable(value)[:max_length] if value else None


def one_line(value: object) -> str:
    """Trimmed, with every run of whitespace (newlines included) collapsed to one space."""
    return " ".join(str(value or "").split())


def has_unfit_characters(text: str) -> bool:
    return any(unicodedata.category(ch) in _UNFIT_CATEGORIES for ch in text)


def clean_name(value: str, field: str, label: str, *, max_length: int = 120) -> str:
    """A name people type (a person's, a practice's): one line, not empty, no hidden characters."""
    text = one_line(value)
    if not text:
        raise ValidationFailed({field: f"Enter {label}."})
    if len(text) > max_length:
        raise ValidationFailed({field: f"Use at most {max_length} characters."})
    if has_unfit_characters(text):
        raise ValidationFailed({field: f"{label.capitalize()} contains characters we cannot "
                                       "store."})
    return text
