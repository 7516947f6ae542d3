"""What each stage asks for, and the rules for it. Drafts may be incomplete; a stage is only
left forward when its data is complete and valid."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from zoneinfo import available_timezones

from core.errors import ValidationFailed
from core.onboarding.stages import Stage
from core.text import has_unfit_characters, one_line

# Bump when the terms or the privacy notice change: every completed account is sent back to
# the terms stage to accept the new version.
TERMS_VERSION = "2026-11-01"

LANGUAGES: dict[str, str] = {
    "en": "English", "cy": "Cymraeg", "de": "Deutsch", "es": "Español", "fr": "Français",
    "it": "Italiano", "nl": "Nederlands", "pl": "Polski", "pt": "Português", "sv": "Svenska",
    "tr": "Türkçe", "uk": "Українська", "ar": "العربية", "zh": "中文",
}

SPECIALTIES: dict[str, str] = {
    "anxiety": "Anxiety", "depression": "Depression", "trauma": "Trauma and PTSD",
    "relationships": "Couples and relationships", "family": "Family", "grief": "Grief and loss",
    "addiction": "Addiction", "eating": "Eating disorders", "ocd": "OCD",
    "adhd": "ADHD", "children": "Children and adolescents", "lgbtq": "LGBTQ+ affirming",
    "stress": "Stress and burnout", "self_esteem": "Self-esteem",
}

MAX_TEXT = 200
MAX_SPECIALTIES = 8


@lru_cache(maxsize=1)
def time_zones() -> tuple[str, ...]:
    return tuple(sorted(z for z in available_timezones() if "/" in z and not z.startswith(
        ("Etc/", "SystemV/", "posix/", "right/"))))


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    check: Callable[[Any], Any]  # returns the clean value or raises ValueError(message)
    kind: str = "text"  # how a draft value is stored: text | list | bool


def _text(label: str, *, min_length: int = 1, max_length: int = 120,
          pattern: str | None = None, hint: str = "") -> Callable[[Any], str]:
    def check(value: Any) -> str:
        text = one_line(value)
        if len(text) < min_length:
            raise ValueError(f"Enter {label}.")
        if len(text) > max_length:
            raise ValueError(f"Use at most {max_length} characters.")
        if has_unfit_characters(text):
            raise ValueError(f"{label.capitalize()} contains characters we cannot store.")
        if pattern and not re.fullmatch(pattern, text):
            raise ValueError(hint or f"Check {label}.")
        return text

    return check


def _phone(value: Any) -> str:
    text = one_line(value)
    if not text:
        raise ValueError("Enter a phone number.")
    if not re.fullmatch(r"\+?[0-9 ()./-]{6,25}", text):
        raise ValueError("Use digits, spaces and an optional leading +, e.g. +44 20 7946 0958.")
    digits = re.sub(r"\D", "", text)
    if not 7 <= len(digits) <= 15:
        raise ValueError("A phone number has between 7 and 15 digits.")
    return text


def _time_zone(value: Any) -> str:
    text = str(value or "").strip()
    if text not in time_zones():
        raise ValueError("Choose your time zone from the list.")
    return text


def _language(value: Any) -> str:
    text = str(value or "").strip()
    if text not in LANGUAGES:
        raise ValueError("Choose a language from the list.")
    return text


def _specialties(value: Any) -> list[str]:
    items = [value] if isinstance(value, str) else list(value or [])
    chosen = sorted({str(item) for item in items if str(item)})
    if not chosen:
        raise ValueError("Choose at least one specialty.")
    if len(chosen) > MAX_SPECIALTIES:
        raise ValueError(f"Choose at most {MAX_SPECIALTIES}.")
    unknown = [c for c in chosen if c not in SPECIALTIES]
    if unknown:
        raise ValueError("Choose specialties from the list.")
    return chosen


def _years(value: Any) -> int:
    try:
        years = int(str(value).strip())
    except (TypeError, ValueError):
        raise ValueError("Enter a whole number of years, e.g. 7.") from None
    if not 0 <= years <= 70:
        raise ValueError("Enter a number between 0 and 70.")
    return years


def _accepted(label: str) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        if value not in (True, "true", "on", "1", "yes"):
            raise ValueError(f"Please accept the {label} to continue.")
        return True

    return check


FIELDS: dict[Stage, tuple[Field, ...]] = {
    Stage.PERSONAL_INFO: (
        Field("full_name", "Full name", _text("your full name")),
        Field("phone", "Phone number", _phone),
        Field("time_zone", "Time zone", _time_zone),
        Field("preferred_language", "Preferred language", _language),
    ),
    Stage.PROFESSIONAL_INFO: (
        Field("licence_number", "Licence number",
              _text("your licence number", min_length=3, max_length=40,
                    pattern=r"[A-Za-z0-9][A-Za-z0-9 /.-]*",
                    hint="Use letters, digits, spaces, / . or -.")),
        Field("licence_jurisdiction", "Licensing body or jurisdiction",
              _text("the licensing body or jurisdiction", min_length=2, max_length=80)),
        Field("specialties", "Specialties", _specialties, kind="list"),
        Field("years_in_practice", "Years in practice", _years),
        Field("practice_display_name", "Practice name shown to clients",
              _text("the practice name shown to clients")),
    ),
    Stage.TERMS: (
        Field("accept_terms", "I accept the terms of service", _accepted("terms of service"),
              kind="bool"),
        Field("accept_privacy", "I accept the privacy notice", _accepted("privacy notice"),
              kind="bool"),
    ),
}


class DraftRejected(ValidationFailed):
    """A draft that cannot even be stored (unknown field, wrong type, far too long)."""


def field_names(stage: Stage) -> tuple[str, ...]:
    return tuple(f.name for f in FIELDS.get(stage, ()))


def clean_draft(stage: Stage, values: Mapping[str, Any]) -> dict[str, Any]:
    """Keep a partial draft as typed (it may be invalid yet); refuse only what cannot be stored."""
    fields = {f.name: f for f in FIELDS.get(stage, ())}
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    for name, value in values.items():
        spec = fields.get(name)
        if spec is None:
            errors[name] = "Unknown field."
        elif spec.kind == "list":
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items) \
                    or len(items) > len(SPECIALTIES):
                errors[name] = "Expected a list of choices."
            else:
                clean[name] = [i[:MAX_TEXT].replace("\x00", "") for i in items]
        elif spec.kind == "bool":
            clean[name] = value in (True, "true", "on", "1", "yes")
        elif value is None or (isinstance(value, str | int | float)
                               and not isinstance(value, bool)):
            text = "" if value is None else str(value)
            if len(text) > MAX_TEXT:
                errors[name] = f"Use at most {MAX_TEXT} characters."
            else:
                clean[name] = text.replace("\x00", "")
        else:
            errors[name] = "Expected text."
    if errors:
        raise DraftRejected(errors)
    return clean


def validate(stage: Stage, values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The stage's complete, clean data and the per-field errors (empty when valid)."""
    clean: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for spec in FIELDS.get(stage, ()):
        try:
            clean[spec.name] = spec.check(values.get(spec.name))
        except ValueError as error:
            errors[spec.name] = str(error)
    return clean, errors


def is_valid(stage: Stage, values: Mapping[str, Any]) -> bool:
    return not validate(stage, values)[1]


def answered_zone(data: Mapping[str, Any] | None) -> str | None:
    """The time zone a person gave in their set-up answers, if it is one we know."""
    zone = ((data or {}).get(Stage.PERSONAL_INFO.value) or {}).get("time_zone")
    return zone if zone in time_zones() else None
