"""`flask audit …`: verify the log's chains, sign a checkpoint, export entries."""

from __future__ import annotations

import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import click
from flask.cli import AppGroup

from core.audit import checkpoints, exports, integrity, viewer
from web.cli import require_database
from web.context import command_unit_of_work, settings

audit_cli = AppGroup("audit", help="The audit log: integrity and exports.")


def _tenant(value: str | None) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise click.BadParameter("give the practice's id (a UUID)", param_hint="--tenant") from None


@audit_cli.command("verify")
@click.option("--tenant", help="Only this practice's chain (its id).")
@click.option("--checkpoints", "sink_file", type=click.File("rb"),
              help="The external sink's records (JSON Lines, as it received them): its signed "
              "checkpoints count too, so a tail cut off together with the database's "
              "checkpoints still shows.")
def audit_verify(tenant: str | None, sink_file: BinaryIO | None) -> None:
    """Check every chain entry by entry and against the signed checkpoints. Exit status 1
    names the first broken sequence number of each broken chain and why."""
    require_database()
    try:
        kept_elsewhere = checkpoints.from_sink_records(sink_file) if sink_file else []
    except checkpoints.UnreadableCheckpoint as error:
        raise click.BadParameter(str(error), param_hint="--checkpoints") from None
    if sink_file:
        click.echo(f"{len(kept_elsewhere)} checkpoint(s) from {sink_file.name}")
    with command_unit_of_work() as uow:
        report = integrity.verify_and_record(uow, settings().audit_key,
                                             tenant_id=_tenant(tenant),
                                             kept_elsewhere=kept_elsewhere)
    click.echo(f"{report.chains} chain(s), {report.entries} entries"
               + (f" ({report.erased} with personal data erased)" if report.erased else ""))
    for problem in report.problems:
        click.echo(f"BROKEN chain {problem.chain_id}: {problem.describe()}")
    if not report.ok:
        click.echo(f"verification FAILED: {len(report.problems)} problem(s)", err=True)
        sys.exit(1)
    click.echo("verified: every chain is intact and reaches its last checkpoint")


@audit_cli.command("checkpoint")
@click.option("--full", is_flag=True, help="Every chain, not only those that moved.")
def audit_checkpoint(full: bool) -> None:
    """Sign the chains' heads now (the scheduler does it hourly)."""
    require_database()
    with command_unit_of_work() as uow:
        checkpoint = checkpoints.sign_heads(uow, settings().audit_key, full=full)
    if checkpoint is None:
        click.echo("no chain moved since the last checkpoint")
    else:
        click.echo(f"checkpoint {checkpoint.id} signed over {len(checkpoint.heads)} chain(s)")



class Progress:
    """Rows written, the rate and the time left, on one line of stderr (redrawn on a
    terminal; a new line every few seconds in a log)."""

    def __init__(self, total: int, *, every_seconds: float = 2.0) -> None:
        self.total, self.done = total, 0
        self.started = self.shown_at = time.monotonic()
        self.terminal = sys.stderr.isatty()
        self.every = 0.2 if self.terminal else every_seconds

    def __call__(self, rows: int) -> None:
        self.done += rows
        now = time.monotonic()
        if now - self.shown_at >= self.every or self.done >= self.total:
            self.shown_at = now
            self.show(now)

    def show(self, now: float) -> None:
        elapsed = max(now - self.started, 1e-6)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate > 0 else 0.0
        share = 100 * self.done / self.total if self.total else 100.0
        line = (f"{self.done:,} / {self.total:,} entries ({share:.0f}%)  {rate:,.0f} rows/s  "
                f"ETA {left:.0f}s")
        click.echo(("\r" + line) if self.terminal else line, err=True,
                   nl=not self.terminal or self.done >= self.total)


def _moment(value: str | None, name: str) -> datetime | None:
    """YYYY-MM-DD (midnight UTC) or an ISO 8601 time (UTC unless it says otherwise)."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter("give YYYY-MM-DD or an ISO 8601 time",
                                 param_hint=name) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@audit_cli.command("export")
@click.option("--since", help="From this day or time (UTC), inclusive.")
@click.option("--until", help="Before this day or time (UTC).")
@click.option("--tenant", help="Only this practice (its id).")
@click.option("--format", "fmt", type=click.Choice(sorted(exports.FORMATS)), default="csv",
              show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The file to write (replaced whole once complete).")
def audit_export(since: str | None, until: str | None, tenant: str | None, fmt: str,
                 out: Path) -> None:
    """Export entries, oldest first, with a progress line; the export is itself audited."""
    require_database()
    filters = exports.as_of_now(viewer.Filters(
        tenant_id=_tenant(tenant), since=_moment(since, "--since"),
        until=_moment(until, "--until")))
    partial = out.with_name(f".{out.name}.partial")
    with command_unit_of_work() as uow:
        progress = Progress(exports.count(uow.session, filters))
        with partial.open("wb") as handle:
            written = exports.write(uow.session, filters, fmt, handle, progress=progress)
        partial.replace(out)
        exports.record_exported(uow, exports.Scope(None, filters.tenant_id), filters, fmt,
                                written.rows, "cli", file=out.name, sha256=written.sha256)
    click.echo(f"{written.rows:,} entries written to {out} (sha256 {written.sha256})")
