"""The metrics rollup on a platform-sized database (see `bench.metrics_data`), timed in ms.

* `metrics-accounts-count` (the baseline): `SELECT count(*)` over the 1,000,000 accounts, as
  the platform's role in a session that sees every practice, like the rollup's (row-level
  security is evaluated on every row; the same count as a superuser is reported beside it).
* `metrics-rollup-full`: a full rollup from an empty `metric_points`: every level counted from
  the tables for every practice, the day's flows recounted (target: at most 5 times the count).
* `metrics-rollup-tick`: after a full rollup, 1,000 new events' worth of activity in the next
  five minutes (sign-ups and their onboarding, sign-ins, invitations sent and accepted, in
  practices picked at random), then the incremental rollup, as a worker runs it from its second
  tick on (target: at most half the count); its first tick beside it.
* Beside each rollup, `points_copy_ms`: the floor of writing what it wrote. The very points it
  wrote are COPYed, in one transaction as the superuser, into a copy of `metric_points` (same
  indexes and fillfactor) that holds every other point: no rollup that writes these points can
  take less, whatever it reads and however it computes them.
* `metrics-read-10k` (the baseline) and `metrics-read`: what `GET /api/metrics?days=30` does
  once the admin's request is let in — a unit of work of a page's connection seeing every
  practice and `core.metrics.read.report` — p99 over READS requests, on the platform a hundred
  times smaller (`metrics_data.SMALL`) and on the 1M-account one, each after a full rollup;
  beside it one practice's report (`?tenant=`). Target: at most 1.5 times the small platform's,
  as the figures come from `metric_points` alone, whose reads follow the period, not the size.

Both rollups run as the workers run them: `core.metrics.rollup.run` in a unit of work of the
platform's role. The tick's activity is deleted again afterwards, so every round and every run
starts from the same data.
"""

from __future__ import annotations

import functools
import json
import random
import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import psycopg

from bench import metrics_data
from bench.measure import Context, MeasurementError, Sample, p99

if TYPE_CHECKING:
    from core.db import Database

TICK = timedelta(minutes=5)
NEW_EVENTS = 1_000
COUNT_REPEATS = 3
READS = 200  # requests per report measured, per round
MARK = "bench-tick"  # request_id of the tick's events; the rows it adds are named after it


@functools.cache
def _reference(reload: bool, scale: metrics_data.Scale = metrics_data.FULL) -> datetime:
    return metrics_data.ensure_loaded(scale, reload=reload, progress=_progress)


def count_accounts(ctx: Context) -> Sample:
    _reference(ctx.options.reload_data)
    import sqlalchemy as sa

    from core.scoping import system_session

    timings, unwalled = [], []
    with _database() as db:
        for _ in range(COUNT_REPEATS):
            with system_session(db) as session:
                started = time.perf_counter()
                session.execute(sa.text("SELECT count(*) FROM accounts")).scalar_one()
                timings.append(_ms(started))
    # For comparison only: the same count as a superuser, whom row-level security skips.
    with psycopg.connect(metrics_data.FULL.admin_url) as connection:
        for _ in range(COUNT_REPEATS):
            started = time.perf_counter()
            connection.execute("SELECT count(*) FROM accounts").fetchone()
            unwalled.append(_ms(started))
    return Sample(value=statistics.median(timings),
                  extra={"superuser_ms": round(statistics.median(unwalled), 1)})


def full_rollup(ctx: Context) -> Sample:
    reference = _reference(ctx.options.reload_data)
    _forget_points()
    with _database() as db:
        started = time.perf_counter()
        report = _rollup(db, now=reference, since=reference.date())
        elapsed = _ms(started)
    if not report.points_written:
        raise MeasurementError("the full rollup wrote no points")
    return Sample(value=elapsed, extra={"points_written": report.points_written,
                                        "points_copy_ms": round(_points_copy_ms(), 1)})


def tick(ctx: Context) -> Sample:
    """The tick a worker runs every five minutes, timed on its second run: a worker's engine
    keeps the statements' compiled forms (and psycopg its prepared ones) from tick to tick, so
    only the first tick of a process pays for them (`first_tick_ms`)."""
    reference = _reference(ctx.options.reload_data)
    with _database() as db:
        first_tick, _report = _timed_tick(db, reference)
        elapsed, report = _timed_tick(db, reference)
    if not report.hours:
        raise MeasurementError("the tick found no new activity")
    return Sample(value=elapsed, extra={"points_written": report.points_written,
                                        "points_copy_ms": round(_points_copy_ms(), 1),
                                        "hours_recounted": len(report.hours),
                                        "first_tick_ms": round(first_tick, 1)})


def _timed_tick(db: Database, reference: datetime):  # type: ignore[no-untyped-def]
    """From a full rollup at `reference`, the tick after 1,000 new events: (ms, its report)."""
    _forget_points()
    _rollup(db, now=reference, since=reference.date())
    try:
        _record_activity(reference)
        started = time.perf_counter()
        report = _rollup(db, now=reference + TICK)
        return _ms(started), report
    finally:
        _remove_activity()


def read_small(ctx: Context) -> Sample:
    return _read_latency(ctx, metrics_data.SMALL)


def read_large(ctx: Context) -> Sample:
    return _read_latency(ctx, metrics_data.FULL)


def _read_latency(ctx: Context, scale: metrics_data.Scale) -> Sample:
    from core.metrics import read
    from core.scoping import TenantContext
    from core.uow import UnitOfWork

    reference = _reference(ctx.options.reload_data, scale)
    if not _has_points(scale):
        with _database(scale) as db:
            _rollup(db, now=reference, since=reference.date())
    with psycopg.connect(scale.admin_url) as connection:
        practice = connection.execute(
            "SELECT id FROM tenants WHERE status = 'active' ORDER BY slug LIMIT 1").fetchone()[0]

    def timings(tenant_id: uuid.UUID | None) -> list[float]:
        found = []
        for _ in range(READS):
            started = time.perf_counter()
            with UnitOfWork(db, tenant=TenantContext.system()) as uow:
                report = read.report(uow.session, days=30, tenant_id=tenant_id)
            found.append(_ms(started))
            if not report.series or not report.figures.people_by_role:
                raise MeasurementError(f"{scale.database}: the report is empty")
        return found

    with _database(scale, page=True) as db:
        timings(None)  # the pool's connection, and the statements' compiled forms
        platform = timings(None)
        one_practice = timings(practice)
    return Sample(value=p99(platform), p50_ms=statistics.median(platform),
                  p99_ms=p99(platform),
                  extra={"accounts": scale.practices * metrics_data.PEOPLE_PER_PRACTICE,
                         "practice_p99_ms": round(p99(one_practice), 2), "requests": READS})


def _has_points(scale: metrics_data.Scale) -> bool:
    with psycopg.connect(scale.admin_url) as connection:
        row = connection.execute("SELECT EXISTS (SELECT FROM metric_points)").fetchone()
    return bool(row and row[0])


def _rollup(db: Database, **options: object):  # type: ignore[no-untyped-def]
    from core.metrics import rollup
    from core.scoping import TenantContext
    from core.uow import UnitOfWork

    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        return rollup.run(uow, **options)  # type: ignore[arg-type]


@contextmanager
def _database(scale: metrics_data.Scale = metrics_data.FULL, *, page: bool = False
              ) -> Iterator[Database]:
    from core.config import Settings
    from core.db import Database

    # A worker's connection, with its statement timeout; or a page's.
    settings = Settings()
    db = Database(scale.app_url, statement_timeout_ms=settings.database_statement_timeout_ms if page
                  else settings.worker_statement_timeout_ms)
    try:
        yield db
    finally:
        db.dispose()


def _points_copy_ms() -> float:
    """The floor of the last rollup's writes: its points (those it stamped last) COPYed into a
    copy of `metric_points` that holds all the others, in one transaction (ms, commit included)."""
    with psycopg.connect(metrics_data.FULL.admin_url, autocommit=True) as connection:
        last = "(SELECT max(computed_at) FROM metric_points)"
        written = connection.execute(
            f"SELECT * FROM metric_points WHERE computed_at = {last}").fetchall()
        connection.execute("DROP TABLE IF EXISTS bench_points_floor")
        connection.execute("CREATE TABLE bench_points_floor (LIKE metric_points INCLUDING ALL) "
                           "WITH (fillfactor = 70)")
        connection.execute("INSERT INTO bench_points_floor SELECT * FROM metric_points "
                           f"WHERE computed_at <> {last}")
        connection.execute("VACUUM ANALYZE bench_points_floor")
    try:
        with psycopg.connect(metrics_data.FULL.admin_url) as connection:
            started = time.perf_counter()
            with connection.cursor() as cursor, cursor.copy(
                    "COPY bench_points_floor FROM STDIN") as copy:
                for row in written:
                    copy.write_row(row)
            connection.commit()
            return _ms(started)
    finally:
        with psycopg.connect(metrics_data.FULL.admin_url, autocommit=True) as connection:
            connection.execute("DROP TABLE bench_points_floor")


def _forget_points(scale: metrics_data.Scale = metrics_data.FULL) -> None:
    with psycopg.connect(scale.admin_url, autocommit=True) as connection:
        connection.execute("TRUNCATE metric_points, metric_rollups")


# -- the tick's activity -------------------------------------------------------------------

def _record_activity(reference: datetime) -> None:
    """1,000 events in (reference - LAG, reference + TICK - LAG], with the rows they describe:
    150 sign-ups (each USER_CREATED and ONBOARDING_STARTED), 100 of them through onboarding
    (three stages and the completion), 200 sign-ins, 60 invitations of which 40 accepted."""
    from core.metrics.rollup import LAG

    rng = random.Random(7)
    first = reference - LAG

    def moment(after: datetime = first) -> datetime:
        return after + (first + TICK - after) * rng.uniform(0.01, 0.99)

    rows: dict[str, list[tuple[object, ...]]] = {
        "identities": [], "accounts": [], "onboarding_progress": [], "invitations": [],
        "events": []}
    with psycopg.connect(metrics_data.FULL.admin_url) as connection:
        tenants = [row[0] for row in connection.execute(
            "SELECT id FROM tenants WHERE status = 'active' ORDER BY slug")]
        members = connection.execute(
            "SELECT id, tenant_id, role FROM accounts WHERE tenant_id IS NOT NULL "
            "ORDER BY created_at DESC LIMIT 50000").fetchall()
        for n in range(150):
            created = moment()
            _sign_up(rows, rng.choice(tenants), n, created, moment(created), onboards=n < 100)
        for account, tenant, role in rng.sample(members, 200):
            rows["events"].append(_event("USER_LOGIN", tenant, account, moment(), {"role": role}))
        for n in range(60):
            sent = moment()
            _invite(rows, rng.choice(tenants), n, sent, moment(sent) if n < 40 else None)
        _insert(connection, rows)


def _sign_up(rows: dict[str, list[tuple[object, ...]]], tenant: object, n: int,
             created: datetime, later: datetime, *, onboards: bool) -> None:
    account = uuid.uuid4()
    rows["identities"].append((account, f"{MARK}-{n}@bench.example", created, 0, 0, created))
    rows["accounts"].append((account, account, "client", tenant, f"{MARK} {n}", created,
                             created))
    rows["onboarding_progress"].append((
        uuid.uuid4(), account, tenant, "client", "COMPLETED" if onboards else "STARTED", "{}", 1,
        created, later if onboards else created, later if onboards else None, 0))
    role = {"role": "client"}
    rows["events"] += [_event("USER_CREATED", tenant, account, created, role),
                       _event("ONBOARDING_STARTED", tenant, account, created, role)]
    if onboards:
        step = (later - created) / 4
        rows["events"] += [
            _event("ONBOARDING_STAGE_COMPLETED", tenant, account, created + step * k,
                   {**role, "stage": stage})
            for k, stage in enumerate(("STARTED", "PERSONAL_INFO", "TERMS"), start=1)]
        rows["events"].append(_event("ONBOARDING_COMPLETED", tenant, account, later, role))


def _invite(rows: dict[str, list[tuple[object, ...]]], tenant: object, n: int, sent: datetime,
            accepted: datetime | None) -> None:
    invitation = uuid.uuid4()
    rows["invitations"].append((invitation, tenant, f"{MARK}-invitee-{n}@bench.example",
                                uuid.uuid4(), sent, sent + timedelta(days=7), accepted))
    payload = {"invitation_id": str(invitation)}
    rows["events"].append(_event("INVITATION_SENT", tenant, None, sent, payload))
    if accepted is not None:
        rows["events"].append(_event("INVITATION_ACCEPTED", tenant, None, accepted, payload))


def _event(kind: str, tenant: object, actor: object, at: datetime,
           payload: dict[str, str]) -> tuple[object, ...]:
    return (uuid.uuid4(), kind, tenant, actor, json.dumps(payload), MARK, at)


COLUMNS = {
    "identities": "id, email, email_verified_at, failed_logins, lockouts, created_at",
    "accounts": "id, identity_id, role, tenant_id, display_name, created_at, last_seen_at",
    "onboarding_progress": "id, account_id, tenant_id, role, stage, data, version, started_at, "
                           "updated_at, completed_at, reminders_sent",
    "invitations": "id, tenant_id, email, invited_by_account_id, created_at, expires_at, "
                   "accepted_at",
    "events": "id, type, tenant_id, actor_account_id, payload, request_id, occurred_at, "
              "attempts, dispatched_at, audited_at",
}


def _insert(connection: psycopg.Connection, rows: dict[str, list[tuple[object, ...]]]) -> None:
    if len(rows["events"]) != NEW_EVENTS:
        raise MeasurementError(f"{len(rows['events'])} new events, not {NEW_EVENTS}")
    with connection.cursor() as cursor:
        for table, values in rows.items():
            if table == "events":  # as the pipeline leaves them: dispatched and audited
                values = [(*v, 0, v[-1], v[-1]) for v in values]
            marks = ", ".join(["%s"] * len(values[0]))
            cursor.executemany(f"INSERT INTO {table} ({COLUMNS[table]}) VALUES ({marks})",
                               values)


def _remove_activity() -> None:
    with psycopg.connect(metrics_data.FULL.admin_url) as connection:
        connection.execute("DELETE FROM events WHERE request_id = %s", (MARK,))
        connection.execute("DELETE FROM invitations WHERE email LIKE %s", (f"{MARK}-%",))
        connection.execute("DELETE FROM identities WHERE email LIKE %s", (f"{MARK}-%",))
    # The same data is not the same table: each tick leaves 1,000 dead events (and their rows)
    # in the very minutes the next tick reads, and autovacuum waits for a fifth of a 5M-row
    # table. After ~50 ticks the tick's sign-in scan visited 9,500 heap pages for 300 live rows
    # (11 -> 45 ms). Vacuumed, with the index entries (a few dead rows alone would skip those).
    with psycopg.connect(metrics_data.FULL.admin_url, autocommit=True) as connection:
        connection.execute("VACUUM (INDEX_CLEANUP ON) events, invitations, identities, accounts, "
                           "onboarding_progress")


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _progress(message: str) -> None:
    import sys

    print(f"bench: {message}", file=sys.stderr, flush=True)
