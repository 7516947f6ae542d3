"""`flask audit …`: verify the log's chains, sign a checkpoint, export entries."""

from __future__ import annotations

import sys
import uuid

import click
from flask.cli import AppGroup

from core.audit import checkpoints, integrity
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
def audit_verify(tenant: str | None) -> None:
    """Check every chain entry by entry and against the signed checkpoints. Exit status 1
    names the first broken sequence number of each broken chain and why."""
    require_database()
    with command_unit_of_work() as uow:
        report = integrity.verify_and_record(uow, settings().audit_key,
                                             tenant_id=_tenant(tenant))
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

