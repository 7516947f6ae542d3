"""The SQL pieces every rollup statement shares, spelled for PostgreSQL and SQLite alike."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

import sqlalchemy as sa

from core.db import UTCDateTime, conflict_insert
from core.metrics.models import MetricPoint
from core.metrics.names import PLATFORM, Grain
from core.metrics.plan import Shape

# A SELECT of any columns (what the statements below compose).
Rows: TypeAlias = "sa.Select[*tuple[Any, ...]]"
POINTS: sa.Table = MetricPoint.__table__  # type: ignore[assignment]
POINT_COLUMNS = ("metric", "scope", "grain", "bucket", "dimension", "tenant_id", "value",
                 "computed_at")
POINT_KEY = ("metric", "scope", "grain", "bucket", "dimension")


def moment(name: str) -> sa.BindParameter[datetime]:
    """A time the statement names and each run supplies: see RollupPlan.parameters."""
    return sa.bindparam(name, type_=UTCDateTime())


def within(column: Any, grain: Grain, shape: Shape) -> sa.ColumnElement[bool]:
    """`column` lies in one of the plan's stretches of hours (or days), and not after as_of."""
    count = shape.hour_spans if grain is Grain.HOUR else shape.day_spans
    if not count:
        return sa.false()
    inside = sa.or_(*(sa.and_(column >= moment(f"{grain.value}_start_{n}"),
                              column < moment(f"{grain.value}_end_{n}")) for n in range(count)))
    return sa.and_(inside, column <= moment("as_of"))


def bucket_of(moment: Any, grain: Grain, dialect: str) -> sa.ColumnElement[datetime]:
    """The start of the bucket `moment` falls in. Spelled with literals, never parameters:
    PostgreSQL matches a GROUP BY expression to its SELECT one by their text."""
    if dialect == "postgresql":
        return sa.func.date_trunc(sa.literal_column(f"'{grain.value}'"), moment,
                                  sa.literal_column("'UTC'"), type_=UTCDateTime())
    # SQLite keeps timestamps as text in this very format (see core.db.UTCDateTime).
    pattern = "%Y-%m-%d %H:00:00.000000" if grain is Grain.HOUR else "%Y-%m-%d 00:00:00.000000"
    return sa.func.strftime(sa.literal_column(f"'{pattern}'"), moment, type_=UTCDateTime())


def seconds_between(later: Any, earlier: Any, dialect: str) -> sa.ColumnElement[float]:
    if dialect == "postgresql":
        return sa.cast(sa.extract("epoch", later - earlier), sa.Float)
    return sa.cast((sa.func.julianday(later) - sa.func.julianday(earlier)) * 86400.0, sa.Float)


def type_in(column: Any, types: Sequence[str]) -> sa.ColumnElement[bool]:
    """`column IN (...)` with the values written into the SQL: a partial index on such a list
    is used only when the query states it as constants (a prepared statement's parameters
    would hide them from PostgreSQL's planner, and SQLite only matches the same text)."""
    result: sa.ColumnElement[bool] = column.in_(
        [sa.literal_column(f"'{name}'") for name in types])
    return result


def no_tenant() -> sa.Label[Any]:
    """The tenant_id of platform rows, typed: PostgreSQL reads a bare NULL as text."""
    return sa.cast(sa.null(), sa.Uuid()).label("tenant_id")


def scope_of(tenant_id: Any) -> sa.ColumnElement[str]:
    """The point's scope for a tenant id (NULL: the platform); the same expression as the
    table's check constraint, so both databases spell a practice's scope their own way."""
    return sa.func.coalesce(sa.cast(tenant_id, sa.String(36)), PLATFORM)


def upsert_points(dialect: str, rows: Rows | sa.CompoundSelect[Any]) -> sa.Insert:
    """INSERT … ON CONFLICT (key) DO UPDATE of (metric, scope, grain, bucket, dimension,
    tenant_id, value) rows; a point whose value is unchanged is left alone."""
    source = rows.subquery("new_points")
    # The WHERE keeps SQLite from reading "ON CONFLICT" as the ON of a join.
    select = sa.select(*(source.c[name] for name in POINT_COLUMNS[:-1]),
                       moment("computed_at").label("computed_at")).where(sa.true())
    statement = conflict_insert(dialect, POINTS).from_select(list(POINT_COLUMNS), select)
    upsert = statement.on_conflict_do_update(
        index_elements=list(POINT_KEY),
        set_={"value": statement.excluded.value, "computed_at": statement.excluded.computed_at},
        where=POINTS.c.value.is_distinct_from(statement.excluded.value),
    )
    # How many points were written: SQLAlchemy keeps an INSERT's row count only when asked.
    return upsert.execution_options(preserve_rowcount=True)


@dataclass(frozen=True)
class Read:
    """A SELECT that the rollup runs on its own, before the statements that write points, and
    whose rows reach them as one array parameter per column (`rows`). PostgreSQL never runs an
    INSERT … SELECT in parallel; a plain SELECT it may, with every core, as it does the plain
    count of the same table. `select` gives None where the statements read the tables
    themselves (SQLite, or an incremental rollup, whose reads are small)."""

    name: str
    columns: tuple[tuple[str, sa.types.TypeEngine[Any]], ...]
    select: Callable[[Shape], Rows | None]

    def rows(self) -> sa.TableValuedAlias:
        """The rows read, as a table (PostgreSQL: unnest of the arrays)."""
        from sqlalchemy.dialects.postgresql import ARRAY

        arrays = (sa.bindparam(f"{self.name}_{column}", type_=ARRAY(type_))
                  for column, type_ in self.columns)
        return sa.func.unnest(*arrays).table_valued(
            *(sa.column(column, type_) for column, type_ in self.columns)
        ).render_derived(name=self.name)

    def parameters(self, rows: Sequence[sa.Row[Any]]) -> dict[str, list[Any]]:
        return {f"{self.name}_{column}": [row[n] for row in rows]
                for n, (column, _type) in enumerate(self.columns)}
