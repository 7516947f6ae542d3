"""The audit viewer's latency: a filtered view's first page and its page 1,000, p99, over
5,000,000 entries (`audit-viewer`) against the same over 50,000 (`audit-viewer-50k`).

Each size lives in a database of its own (migrated like the platform's, filled once per run by
`warm_up`, untimed: 1,000 practices, ten event types, two years of entries), so that the other
entries' cleaning never touches them. A request is what the page does: a new session for the
admin (every practice), `core.audit.viewer.page` with the filters and the page's cursor. The view:
"recorded in the last two years" (it selects every entry, so page 1,000 exists in both sizes);
beside it, one practice's successful entries, first page (`practice_p99_ms`).

The platform's modules are imported only when these entries run (see `bench.pipeline`).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from bench import backends
from bench.measure import Context, Sample, p99

LARGE, SMALL, QUICK_LARGE = 5_000_000, 50_000, 500_000
REQUESTS = 200  # per page measured, per round
FILL_CHUNK = 250_000
DEEP_PAGE = 1000
SPAN = timedelta(days=730)
PRACTICES = 1000
TYPES = ("USER_LOGIN", "LOGOUT", "ONBOARDING_STAGE_COMPLETED", "TEST_EMAIL_REQUESTED",
         "SESSION_REVOKED", "ROLE_SWITCHED", "PASSWORD_CHANGED", "LOGIN_FAILED",
         "ACCESS_DENIED", "INVITATION_SENT")

FILL = """
INSERT INTO audit_entries (chain_id, seq, prev_hash, hash, event_id, type, outcome, tenant_id,
    request_id, metadata, occurred_at, created_at, personal_digest, actor_account_id, subject,
    ip, user_agent, personal_salt)
SELECT tenant, g / %(practices)s + 1, '\\x00'::bytea, sha256(int8send(g)), gen_random_uuid(),
    (%(types)s::text[])[1 + g %% 10],
    CASE g %% 10 WHEN 7 THEN 'failure' WHEN 8 THEN 'denied' ELSE 'success' END,
    tenant, NULL, jsonb_build_object('n', g), at, at, sha256(int8send(g)), NULL,
    'identity:' || tenant, ('10.' || (g %% 256) || '.' || (g / 256 %% 256) || '.7')::inet,
    'bench/1', NULL
FROM (SELECT g, md5((g %% %(practices)s)::text)::uuid AS tenant,
             %(start)s::timestamptz + g::bigint * %(step)s::bigint * interval '1 microsecond' AS at
      FROM generate_series(%(first)s, %(last)s) AS g) AS rows
"""


@dataclass
class Dataset:
    rows: int
    backends: backends.Backends
    filled: bool = False
    started: datetime = field(default_factory=lambda: datetime.now(UTC) - SPAN)


_datasets: dict[str, Dataset] = {}


def _dataset(ctx: Context, size: str) -> Dataset:
    if size not in _datasets:
        rows = SMALL if size == "small" else (
            LARGE if ctx.options.audit_rows >= 10_000 else QUICK_LARGE)
        _datasets[size] = Dataset(rows, backends.Backends(
            f"bench_audit_{size}", backends.APP_ROLE, backends.REDIS_URL))
    return _datasets[size]


def _fill(ctx: Context, dataset: Dataset) -> None:
    if dataset.filled:
        return
    env = backends.platform_env(ctx.workdir / f"instance-{dataset.backends.database_name}",
                                dataset.backends)
    backends.reset_database(dataset.backends)
    backends.migrate(env)
    step = int(SPAN / timedelta(microseconds=1) // dataset.rows)
    with psycopg.connect(dataset.backends.owner_url, autocommit=True) as connection:
        month = datetime(dataset.started.year, dataset.started.month, 1, tzinfo=UTC)
        while month <= datetime.now(UTC):
            connection.execute("SELECT audit_ensure_partition(%s)", (month,))
            month = (month + timedelta(days=32)).replace(day=1)
        for first in range(0, dataset.rows, FILL_CHUNK):
            connection.execute(FILL, {
                "practices": PRACTICES, "types": list(TYPES), "start": dataset.started,
                "step": step, "first": first,
                "last": min(first + FILL_CHUNK, dataset.rows) - 1})
        connection.execute("VACUUM ANALYZE audit_entries")
    dataset.filled = True


def warm_large(ctx: Context) -> None:
    _fill(ctx, _dataset(ctx, "large"))


def warm_small(ctx: Context) -> None:
    _fill(ctx, _dataset(ctx, "small"))


def _p99(timings: list[float]) -> float:
    return p99(timings) * 1000


def _latencies(db: Any, filters: Any, cursor: Any) -> list[float]:
    from core.audit import viewer
    from core.scoping import TenantContext
    from core.uow import UnitOfWork

    timings = []
    for _ in range(REQUESTS):
        start = time.perf_counter()
        with UnitOfWork(db, tenant=TenantContext.system()) as uow:
            page = viewer.page(uow.session, filters, older_than=cursor)
        timings.append(time.perf_counter() - start)
        assert len(page.entries) == viewer.PAGE_SIZE
    return timings


def _deep_cursor(db: Any, filters: Any) -> Any:
    """The cursor that opens page 1,000 (untimed: found by OFFSET once)."""
    import sqlalchemy as sa

    from core.audit import viewer
    from core.audit.models import AuditEntry
    from core.scoping import TenantContext
    from core.uow import UnitOfWork

    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        last_of_previous = uow.session.execute(
            sa.select(AuditEntry).where(*viewer.conditions(uow.session, filters))
            .order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc())
            .offset((DEEP_PAGE - 1) * viewer.PAGE_SIZE - 1).limit(1)).scalar_one()
        return viewer.Cursor.of(last_of_previous)


def _measure(ctx: Context, size: str) -> Sample:
    from core.audit import viewer
    from core.db import Database

    dataset = _dataset(ctx, size)
    _fill(ctx, dataset)
    db = Database(dataset.backends.database_url)
    try:
        recent = viewer.Filters(since=dataset.started - timedelta(days=1))
        one_practice = viewer.Filters(tenant_id=_practice(0), outcome="success")
        deep = _deep_cursor(db, recent)
        first = _latencies(db, recent, None)
        thousandth = _latencies(db, recent, deep)
        practice = _latencies(db, one_practice, None)
    finally:
        db.dispose()
    both = first + thousandth
    return Sample(value=_p99(both), p50_ms=statistics.median(both) * 1000, p99_ms=_p99(both),
                  extra={"entries": dataset.rows, "page_1_p99_ms": round(_p99(first), 2),
                         "page_1000_p99_ms": round(_p99(thousandth), 2),
                         "practice_p99_ms": round(_p99(practice), 2),
                         "requests": len(both)})


def _practice(number: int) -> Any:
    import hashlib
    import uuid

    return uuid.UUID(hashlib.md5(str(number).encode()).hexdigest())


def small_latency(ctx: Context) -> Sample:
    return _measure(ctx, "small")


def large_latency(ctx: Context) -> Sample:
    return _measure(ctx, "large")
