"""Which tenant's rows a database session may see and write.

Every session carries a `TenantContext` in `session.info`. Queries on tenant-owned models are
scoped to it automatically (`with_loader_criteria`), so a query that forgets the filter is still
scoped; a flush that would write another tenant's row is refused. On PostgreSQL the same context
is set as transaction-local settings that the row-level security policies read: a second wall
that also covers raw SQL.

A session with no context is anonymous: it sees no tenant-owned rows at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, mapped_column, with_loader_criteria

from core.db import Database

INFO_KEY = "tenant_context"


class TenantViolation(Exception):
    """A write would have touched another tenant's data."""


@dataclass(frozen=True)
class TenantContext:
    tenant_id: uuid.UUID | None = None
    all_tenants: bool = False

    @classmethod
    def anonymous(cls) -> TenantContext:
        return cls()

    @classmethod
    def system(cls) -> TenantContext:
        """Workers, the CLI and platform admins: every tenant."""
        return cls(all_tenants=True)

    @classmethod
    def of(cls, tenant_id: uuid.UUID | None) -> TenantContext:
        return cls(tenant_id=tenant_id) if tenant_id else cls()


class TenantOwned:
    """Mixin for models whose rows belong to one tenant. Models may redeclare `tenant_id` (with
    a foreign key for live data; records that outlive a tenant keep the plain column)."""

    tenant_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid(), nullable=True)


def context_of(session: Session) -> TenantContext:
    context: TenantContext = session.info.get(INFO_KEY) or TenantContext.anonymous()
    return context


def set_context(session: Session, context: TenantContext) -> None:
    """Switch the session's tenant; applies at once, also inside an open transaction."""
    session.info[INFO_KEY] = context
    if session.in_transaction():
        connection = session.connection()
        if connection.dialect.name == "postgresql":
            _apply_settings(connection, context)


def _apply_settings(connection: sa.Connection, context: TenantContext) -> None:
    # Straight to the driver: it runs at the start of every transaction of every request and
    # message, and SQLAlchemy's execution machinery cost more than the statement itself.
    dbapi_connection: Any = connection.connection.dbapi_connection
    parameters = (str(context.tenant_id) if context.tenant_id else "",
                  "on" if context.all_tenants else "off")
    try:
        dbapi_connection.execute(_SET_CONTEXT, parameters)
    except connection.dialect.loaded_dbapi.Error as error:
        raise _as_sqlalchemy_error(connection, error, parameters) from error


def _as_sqlalchemy_error(connection: sa.Connection, error: Any,
                         parameters: tuple[str, str]) -> sa.exc.StatementError:
    """What SQLAlchemy would have made of an error it did not see: wrapped in its exception
    classes, and the connection invalidated if it was lost, so the pool never takes it back."""
    dialect = connection.dialect
    lost = dialect.is_disconnect(error, connection.connection.dbapi_connection, None)
    if lost:
        connection.invalidate(error)
    wrapped: sa.exc.StatementError = sa.exc.DBAPIError.instance(
        _SET_CONTEXT, parameters, error, dialect.loaded_dbapi.Error,
        connection_invalidated=lost, dialect=dialect)
    return wrapped


_SET_CONTEXT = ("SELECT set_config('app.tenant_id', %s, true), "
                "set_config('app.all_tenants', %s, true)")


def system_session(db: Database) -> Session:
    """A session that sees every tenant (CLI, maintenance, tests)."""
    session = db.session()
    set_context(session, TenantContext.system())
    return session


@contextmanager
def crossing_tenants(session: Session) -> Iterator[None]:
    """For the few reads that must cross tenants on purpose (every account of one identity at
    login), in both walls: the ORM scope and, on PostgreSQL, the row-level security setting."""
    previous = context_of(session)
    set_context(session, TenantContext.system())
    try:
        yield
    except BaseException:
        _restore_after_error(session, previous)
        raise
    set_context(session, previous)


@contextmanager
def within_tenant(session: Session, tenant_id: uuid.UUID | None) -> Iterator[None]:
    """Work inside one tenant for a moment, then return to the context the session had: a new
    practice's first rows, an invitation accepted by someone not logged in yet. Changes made
    inside are flushed inside, so both walls check them against this tenant."""
    previous = context_of(session)
    set_context(session, TenantContext.of(tenant_id) if tenant_id else TenantContext.system())
    try:
        yield
        session.flush()
    except BaseException:
        _restore_after_error(session, previous)
        raise
    set_context(session, previous)


def _restore_after_error(session: Session, previous: TenantContext) -> None:
    """Back to `previous` after the block failed. Where the failure took the transaction with
    it (the database stopped answering mid-flush), only the session's own record changes, which
    the next transaction starts from: reaching for the lost connection again raised a second
    error that hid the first, and a 503 ("the database did not answer") became a 500."""
    try:
        set_context(session, previous)
    except sa.exc.SQLAlchemyError:
        session.info[INFO_KEY] = previous


def context_for(role: str, tenant_id: uuid.UUID | None) -> TenantContext:
    """The one answer to "which practices may this account see": its own; admins, all."""
    if role == "admin":
        return TenantContext.system()
    return TenantContext.of(tenant_id)


@event.listens_for(Session, "after_begin")
def _on_begin(session: Session, _transaction: Any, connection: sa.Connection) -> None:
    if connection.dialect.name == "postgresql":
        _apply_settings(connection, context_of(session))


@event.listens_for(Session, "do_orm_execute")
def _scope_queries(state: ORMExecuteState) -> None:
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if state.is_column_load or state.is_relationship_load:
        return  # the parent query was scoped already
    context = context_of(state.session)
    if context.all_tenants:
        return
    tenant_id = context.tenant_id
    if tenant_id is None:
        criteria = with_loader_criteria(TenantOwned, lambda cls: sa.false(), include_aliases=True)
    else:
        criteria = with_loader_criteria(
            TenantOwned, lambda cls: cls.tenant_id == tenant_id, include_aliases=True
        )
    state.statement = state.statement.options(criteria)


@event.listens_for(Session, "before_flush")
def _guard_writes(session: Session, _flush_context: Any, _instances: Any) -> None:
    context = context_of(session)
    if context.all_tenants:
        return
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, TenantOwned) and obj.tenant_id != context.tenant_id:
            raise TenantViolation(
                f"refusing to write a {type(obj).__name__} of another tenant"
            )
