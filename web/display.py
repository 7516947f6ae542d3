"""How pages show things: every time in the reader's own time zone, set-up stages by name."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Flask, g

from core import clock, localtime
from core.onboarding.stages import Stage

STAGE_LABELS = {
    Stage.STARTED: "Welcome",
    Stage.PERSONAL_INFO: "About you",
    Stage.PROFESSIONAL_INFO: "Your practice",
    Stage.TERMS: "Terms",
    Stage.COMPLETED: "Done",
}


def reader_zone() -> str:
    view = g.get("view")
    return view.time_zone if view is not None else localtime.UTC_NAME


def _date_time(moment: datetime | None) -> str:
    return localtime.date_time(moment, reader_zone()) if moment else ""


def _time_of_day(moment: datetime | None) -> str:
    return localtime.time_of_day(moment, reader_zone()) if moment else ""


def _stage_label(stage: Any) -> str:
    try:
        return STAGE_LABELS[Stage(stage)]
    except ValueError:
        return str(stage)


# Where a kept page's render finds the marker that each copy replaces with its own moment
# (web.page_cache).
RENDERED_AT_IN_G = "rendered_at_mark"


def _rendered_at() -> str:
    """The moment the page is served, from which its live updates count."""
    mark: str | None = g.get(RENDERED_AT_IN_G)
    return mark or clock.now().isoformat()  # clock looked up on each call: tests move it


def init_app(app: Flask) -> None:
    app.add_template_filter(_date_time, "local_time")
    app.add_template_filter(_time_of_day, "local_time_of_day")
    app.add_template_filter(_stage_label, "stage_label")
    app.add_template_global(reader_zone, "reader_zone")
    app.add_template_global(_rendered_at, "rendered_at")
