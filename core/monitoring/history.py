"""Health history: the checks recorded every minute (kept 7 days), each part's last 24 hours as
a strip with its uptime, and incidents: a part whose check fails, or dead letters waiting, opens
one incident (one alert to the admins) and closes it when it recovers (one more).

Recorded by a worker on the scheduler's clock; read by /admin/health.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core import clock
from core.db import insert_ignoring_conflicts
from core.events.models import DeadLetter
from core.events.types import EventType
from core.health import FAIL, PASS, WARN, CheckResult
from core.monitoring.models import HealthIncident, HealthSample
from core.uow import UnitOfWork

RETENTION = timedelta(days=7)
STRIP = timedelta(hours=24)
SLOTS = 48  # half an hour each
DEAD_LETTERS = "dead_letters"
_RANK = {PASS: 0, WARN: 1, FAIL: 2}


@dataclass(frozen=True)
class Recorded:
    opened: tuple[str, ...]
    resolved: tuple[str, ...]
    pruned: int


def record(uow: UnitOfWork, results: Mapping[str, CheckResult], *,
           now: datetime | None = None) -> Recorded:
    """Store one sample per check, open and close incidents, prune past retention; commit."""
    session = uow.session
    now = now or clock.now()
    session.add_all([HealthSample(taken_at=now, check=name, status=result.status,
                                  latency_ms=result.latency_ms, detail=result.detail[:300])
                     for name, result in results.items()])
    failing = {name: result.detail for name, result in results.items() if result.status == FAIL}
    waiting = session.execute(sa.select(sa.func.count()).select_from(DeadLetter).where(
        DeadLetter.retried_at.is_(None))).scalar_one()
    if waiting:
        failing[DEAD_LETTERS] = f"{waiting} dead letter(s) waiting for a replay"
    open_now = {incident.part: incident for incident in session.execute(
        sa.select(HealthIncident).where(HealthIncident.resolved_at.is_(None))
        .with_for_update()).scalars()}
    opened = _open(uow, {part: detail for part, detail in failing.items()
                         if part not in open_now}, now)
    resolved = []
    for part, incident in sorted(open_now.items()):
        if part not in failing:
            incident.resolved_at = now
            resolved.append(part)
            uow.record(EventType.HEALTH_INCIDENT_RESOLVED, subject=f"health:{part}", payload={
                "incident": str(incident.id), "part": part,
                "opened_at": incident.opened_at.isoformat()})
    pruned: int = session.execute(sa.delete(HealthSample).where(  # type: ignore[attr-defined]
        HealthSample.taken_at < now - RETENTION)).rowcount or 0
    session.execute(sa.delete(HealthIncident).where(HealthIncident.resolved_at < now - RETENTION))
    uow.commit()
    return Recorded(tuple(opened), tuple(resolved), pruned)


def _open(uow: UnitOfWork, parts: dict[str, str], now: datetime) -> list[str]:
    """One incident per part: a concurrent recorder that opened it first wins (the partial
    unique index), and this one sends no second alert."""
    session = uow.session
    opened = []
    for part, detail in sorted(parts.items()):
        incident_id = uuid.uuid4()
        insert_ignoring_conflicts(session, HealthIncident.__table__,  # type: ignore[arg-type]
                                  [{"id": incident_id, "part": part, "opened_at": now,
                                    "detail": detail[:300]}])
        if session.get(HealthIncident, incident_id) is None:
            continue
        opened.append(part)
        uow.record(EventType.HEALTH_INCIDENT_OPENED, subject=f"health:{part}", payload={
            "incident": str(incident_id), "part": part, "detail": detail[:300]})
    return opened


@dataclass(frozen=True)
class Slot:
    start: datetime
    status: str | None  # the worst of its samples; None: no sample (nothing recorded)
    samples: int


@dataclass(frozen=True)
class Strip:
    part: str
    slots: tuple[Slot, ...]
    uptime: float | None  # share of samples that passed or warned; None without samples
    failures: int
    latest: str | None

    @property
    def summary(self) -> str:
        if self.uptime is None:
            return "no samples in the last 24 hours"
        failed = f", failing in {self.failures} sample(s)" if self.failures else ", no failures"
        return f"{self.uptime * 100:.1f} % up over the last 24 hours{failed}"


def strips(session: Session, parts: tuple[str, ...], *, now: datetime | None = None
           ) -> list[Strip]:
    """Each part's last 24 hours in half-hour slots, worst status first in each."""
    now = now or clock.now()
    since = now - STRIP
    width = STRIP / SLOTS
    rows = session.execute(sa.select(HealthSample.check, HealthSample.taken_at,
                                     HealthSample.status).where(
        HealthSample.taken_at > since).order_by(HealthSample.taken_at)).all()
    by_part: dict[str, list[tuple[datetime, str]]] = {}
    for part, taken_at, status in rows:
        by_part.setdefault(part, []).append((taken_at, status))
    result = []
    for part in parts:
        samples = by_part.get(part, [])
        worst: list[str | None] = [None] * SLOTS
        counts = [0] * SLOTS
        for taken_at, status in samples:
            index = min(SLOTS - 1, int((taken_at - since) / width))
            counts[index] += 1
            if worst[index] is None or _RANK.get(status, 2) > _RANK.get(worst[index] or "", 0):
                worst[index] = status
        failures = sum(1 for _, status in samples if status == FAIL)
        result.append(Strip(
            part, tuple(Slot(since + width * i, worst[i], counts[i]) for i in range(SLOTS)),
            (len(samples) - failures) / len(samples) if samples else None, failures,
            samples[-1][1] if samples else None))
    return result


def open_incidents(session: Session) -> list[HealthIncident]:
    return list(session.execute(sa.select(HealthIncident).where(
        HealthIncident.resolved_at.is_(None)).order_by(HealthIncident.opened_at)).scalars())
