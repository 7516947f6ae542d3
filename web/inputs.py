"""Request input the views can trust the shape of: JSON bodies, timestamps, and URLs without NUL.

Anything malformed stops here with a 400 that says what was wrong (see `web.errors`), before a
view or the database could turn it into a 500. PostgreSQL refuses NUL in text and lone UTF-16
surrogates (from JSON's "\\ud800") in jsonb; Python's json module recurses once per nesting level.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from flask import abort, request

from web.errors import MalformedRequest

MAX_JSON_DEPTH = 16


def reject_unusable_urls() -> None:
    """before_request: a path with NUL names nothing (404); a query with NUL is malformed."""
    if "\x00" in request.path:
        abort(404)
    if "\x00" in request.query_string.decode("latin-1") or any(
            "\x00" in value for value in request.args.values()):
        raise MalformedRequest("The address contains a NUL character.")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def _not_a_number(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def json_object(example: str) -> dict[str, Any]:
    """The body as a JSON object; `example` shows the caller what to send instead."""
    if not request.is_json:
        raise MalformedRequest(f"Send a JSON object ({example}) with Content-Type: "
                               "application/json.")
    try:
        body = json.loads(request.get_data(cache=True), parse_float=_finite,
                          parse_constant=_not_a_number)
    except RecursionError:
        raise MalformedRequest("The JSON body is nested too deeply.") from None
    except ValueError:
        raise MalformedRequest(f"The body is not valid JSON; send {example}.") from None
    if not isinstance(body, dict):
        raise MalformedRequest(f"Send a JSON object: {example}.")
    _check_storable(body)
    return body


def _check_storable(body: dict[str, Any]) -> None:
    """Depth and text checks without recursion: the body may be hostile."""
    pending: list[tuple[Any, int]] = [(body, 1)]
    while pending:
        value, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise MalformedRequest(f"The JSON body is nested more than {MAX_JSON_DEPTH} levels "
                                   "deep.")
        if isinstance(value, str):
            _check_text(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                _check_text(key)
                pending.append((item, depth + 1))
        elif isinstance(value, list):
            pending.extend((item, depth + 1) for item in value)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedRequest("The JSON body contains a lone surrogate (e.g. \\ud800), which "
                               "is not a character.") from None


def aware_timestamp(raw: str | None, name: str) -> datetime | None:
    """An ISO 8601 date and time with a UTC offset, as UTC; None when absent."""
    if raw is None or raw == "":
        return None
    example = f"{name} must be a date and time with its UTC offset, e.g. 2026-11-29T18:00:00Z"
    if "\x00" in raw or len(raw) > 64 or "T" not in raw.upper():
        raise MalformedRequest(example + ".")
    try:
        value = datetime.fromisoformat(raw)
        if value.tzinfo is None:
            raise ValueError("naive")
        return value.astimezone(UTC)
    except (ValueError, OverflowError):
        raise MalformedRequest(example + ".") from None
