"""Times as a person reads them: in their own time zone, with the zone's abbreviation.

Everything is stored in UTC; only what is shown (pages, e-mails) is converted, here.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC_NAME = "UTC"


@lru_cache(maxsize=256)
def zone(name: str | None) -> ZoneInfo:
    """The zone called `name`, or UTC when it is missing or unknown."""
    try:
        return ZoneInfo(name or UTC_NAME)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(UTC_NAME)


def local(moment: datetime, zone_name: str | None) -> datetime:
    return moment.astimezone(zone(zone_name))


def date_time(moment: datetime, zone_name: str | None) -> str:
    """"29 Nov 2026, 14:03 GMT"."""
    shown = local(moment, zone_name)
    return f"{shown.day} {shown:%b %Y, %H:%M} {_abbreviation(shown)}"


def long_date_time(moment: datetime, zone_name: str | None) -> str:
    """"29 November 2026 at 14:03 GMT", for e-mails."""
    shown = local(moment, zone_name)
    return f"{shown.day} {shown:%B %Y at %H:%M} {_abbreviation(shown)}"


def time_of_day(moment: datetime, zone_name: str | None) -> str:
    shown = local(moment, zone_name)
    return f"{shown:%H:%M} {_abbreviation(shown)}"


def _abbreviation(shown: datetime) -> str:
    name = shown.tzname() or UTC_NAME
    # Zones without a common abbreviation report an offset such as "+04": say it as one.
    return f"UTC{name}" if name[:1] in "+-" else name
