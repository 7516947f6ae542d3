"""Text from outside, made storable: PostgreSQL text and JSONB hold no NUL or lone surrogate."""

from __future__ import annotations

from typing import Any

REPLACEMENT = "\ufffd"


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
