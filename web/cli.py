"""Operator commands: `flask db …`, `flask jobs …`, `flask mail …`, `flask metrics …`."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from pathlib import Path

import click
from alembic import command
from alembic.config import Config
from flask import Flask
from flask.cli import AppGroup

from core import clock
from core.db import Database, DatabaseUnavailable, check_connection
from core.errors import DomainError, ValidationFailed
from core.identity.signup import create_admin
from core.mail.addresses import InvalidAddress
from core.mail.test_email import request_test_email
from core.pipeline import dead_letters
from core.scoping import TenantContext
from core.uow import UnitOfWork
from web.context import background, command_unit_of_work, services, settings

ROOT = Path(__file__).resolve().parent.parent

db_cli = AppGroup("db", help="Database schema (Alembic migrations).")
jobs_cli = AppGroup("jobs", help="Background jobs: dead letters and replays.")
mail_cli = AppGroup("mail", help="Outgoing e-mail.")
users_cli = AppGroup("users", help="Platform admins.")
metrics_cli = AppGroup("metrics", help="Rolled-up figures (metric_points).")


def alembic_config() -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["database_url"] = settings().database_url
    config.attributes["configure_logging"] = False
    return config


def require_database() -> None:
    try:
        check_connection(services().db.engine)
    except DatabaseUnavailable as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)


@db_cli.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations (the Procfile's release step)."""
    require_database()
    command.upgrade(alembic_config(), revision)
    click.echo(f"database at {revision}")


@db_cli.command("check")
def db_check() -> None:
    """Fail if the models and the migrations disagree."""
    require_database()
    command.check(alembic_config())
    click.echo("models and migrations agree")


@db_cli.command("current")
def db_current() -> None:
    require_database()
    command.current(alembic_config())


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"


@jobs_cli.command("dead-letters")
def jobs_dead_letters() -> None:
    """List messages that ran out of retries."""
    require_database()
    with services().db.session() as session:
        letters = dead_letters.waiting(session)
    if not letters:
        click.echo("no dead letters")
        return
    now = clock.now()
    click.echo(f"{'ID':>5}  {'QUEUE':<12} {'ACTOR':<24} {'EVENT':<36} "
               f"{'TRIES':>5} {'AGE':>5}  ERROR")
    for letter in letters:
        age = _age((now - letter.failed_at) / timedelta(seconds=1))
        click.echo(f"{letter.id:>5}  {letter.queue:<12} {letter.actor:<24} "
                   f"{letter.event_id or '-'!s:<36} {letter.attempts:>5} {age:>5}  "
                   f"{(letter.error or '')[:80]}")


@jobs_cli.command("retry")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "retry_all", is_flag=True, help="Replay every waiting dead letter.")
def jobs_retry(ids: tuple[int, ...], retry_all: bool) -> None:
    """Replay dead letters by ID (or --all) with a fresh retry budget."""
    if not ids and not retry_all:
        raise click.UsageError("give dead-letter IDs or --all")
    require_database()
    with services().db.session() as session:
        waiting = dead_letters.waiting(session, limit=10_000) if retry_all else dead_letters.find(
            session, ids)
        letters = [(letter.id, letter.actor) for letter in waiting]
    if not letters:
        click.echo("nothing to retry")
        return
    for letter_id, actor in letters:  # one at a time: a failure leaves the rest waiting
        with command_unit_of_work() as uow:
            for letter in dead_letters.find(uow.session, [letter_id]):
                background().replay(dead_letters.prepare_replay(uow.session, letter))
        click.echo(f"re-enqueued dead letter {letter_id} ({actor})")


@mail_cli.command("send-test")
@click.argument("address")
def mail_send_test(address: str) -> None:
    """Send a test e-mail through the workers, to check outgoing mail end to end."""
    require_database()
    with command_unit_of_work() as uow:
        try:
            event = request_test_email(uow, address)
        except InvalidAddress as error:
            raise click.BadParameter(str(error), param_hint="ADDRESS") from None
    click.echo(f"test e-mail queued (event {event.id}); Message-ID <{event.id}.send_test_email@…>")


@users_cli.command("create-admin")
@click.argument("email")
@click.option("--send-link", is_flag=True,
              help="E-mail a set-password link instead of asking for a password now.")
def users_create_admin(email: str, send_link: bool) -> None:
    """Create a platform admin (a new identity, or an admin role on an existing one)."""
    require_database()
    password = None
    if not send_link:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    with command_unit_of_work() as uow:
        try:
            account = create_admin(uow, email, password)
        except ValidationFailed as failed:
            raise click.ClickException("; ".join(failed.errors.values())) from None
        except DomainError as error:
            raise click.ClickException(str(error)) from None
    how = "a set-password link is on its way" if send_link else "log in with that password"
    click.echo(f"admin account {account.id} created for {email.strip().lower()}; {how}")


@metrics_cli.command("rollup")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]),
              help="Recount the flows from this day (UTC) on: a backfill.")
def metrics_rollup(since: datetime | None) -> None:
    """Recompute the metrics now: every level from the tables; the flows since DATE, else
    since the day of the last rollup."""
    from core.metrics import rollup

    require_database()
    # A backfill's statements may run as long as a worker's, not a page's.
    db = Database(settings().database_url,
                  statement_timeout_ms=settings().worker_statement_timeout_ms)
    try:
        with UnitOfWork(db, tenant=TenantContext.system()) as uow:
            report = rollup.run(uow, full=True, since=since.date() if since else None)
    finally:
        db.dispose()
    as_of = f"{report.as_of:%Y-%m-%d %H:%M} UTC" if report.as_of else "now"
    click.echo(f"metrics rolled up to {as_of}: {len(report.days)} day(s) of flows recounted, "
               f"{report.points_written} point(s) written")


def init_app(app: Flask) -> None:
    from web.audit_cli import audit_cli  # it uses require_database from here

    for group in (db_cli, jobs_cli, mail_cli, users_cli, metrics_cli, audit_cli):
        app.cli.add_command(group)
