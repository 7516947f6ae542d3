"""`python -m proof`: start the platform as production runs it, then, in order:

  chaos          sign-ups while a worker is SIGKILLed, Redis killed, the database black-holed
                 and the broker restarted: every verification e-mail exactly once (proof.chaos)
  load           many clients at once on the public pages, log-in, dashboards and auto-save,
                 each page its own wrk: 5xx and p99 per page (proof.load)
  fuzz           schemathesis against /api/openapi.json as a logged-in person, the event stream
                 by hand, hypothesis over every HTML form found by crawling (proof.fuzz)
  cross-tenant   every route of url_map with another practice's ids, as each role (proof.tenancy)
  redirects      open-redirect payloads on every next-like parameter (proof.redirects)
  headers        security headers on every answer the probes above received, of every status

and print one table. Exit status 1 when any target was missed, 2 when the run could not start.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType

from bench.http import WrkError
from bench.measure import MeasurementError
from bench.servers import ServerError
from proof import chaos, fuzz, load, redirects, tenancy
from proof.accounts import People, seed
from proof.client import HeaderAudit
from proof.platform import Platform, platform
from proof.report import Row, format_table, write_json
from proof.services import PrivateRabbitMQ, ServiceError

RESULTS = Path(__file__).resolve().parent / "results"
PROBES = ("chaos", "load", "fuzz", "cross-tenant", "redirects", "headers")


@dataclass(frozen=True)
class Options:
    quick: bool
    chaos: chaos.ChaosOptions
    load: load.LoadOptions
    fuzz: fuzz.FuzzOptions
    rabbitmq: bool


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, Options]:
    parser = argparse.ArgumentParser(prog="python -m proof", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="the short form CI runs: 100 sign-ups and 1 worker kill, 20 "
                        "clients for 10 s, a few examples per fuzzed operation and form")
    parser.add_argument("--signups", type=int, help="sign-ups during chaos (1000; --quick 100)")
    parser.add_argument("--clients", type=int, help="load: concurrent clients (200; --quick 20)")
    parser.add_argument("--seconds", type=int, help="load: seconds (60; --quick 10)")
    parser.add_argument("--examples", type=int,
                        help="fuzz: examples per API operation and per form (50/30; --quick 10/5)")
    parser.add_argument("--broker", choices=("rabbitmq", "redis"),
                        help="the broker: a private RabbitMQ node where RabbitMQ is installed "
                        "(default), else Redis")
    parser.add_argument("--only", action="append", choices=PROBES, metavar="PROBE",
                        help=f"run only this probe (repeatable): {', '.join(PROBES)}")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json",
                        help="where to write the JSON (default proof/results/latest.json)")
    args = parser.parse_args(argv)
    chaos_options = chaos.QUICK if args.quick else chaos.FULL
    if args.signups:
        chaos_options = chaos.ChaosOptions(args.signups, chaos_options.concurrency,
                                           chaos_options.schedule,
                                           mail_timeout_s=chaos_options.mail_timeout_s)
    load_options = load.options(args.clients or (20 if args.quick else 200),
                                args.seconds or (10 if args.quick else 60))
    fuzz_options = (fuzz.QUICK if args.quick else fuzz.FULL)
    if args.examples:
        fuzz_options = fuzz.FuzzOptions(args.examples, args.examples)
    use_rabbitmq = (args.broker or ("rabbitmq" if PrivateRabbitMQ.available() else "redis")
                    ) == "rabbitmq"
    return args, Options(args.quick, chaos_options, load_options, fuzz_options, use_rabbitmq)


def probes(selected: Sequence[str], options: Options, audit: HeaderAudit
           ) -> list[tuple[str, Callable[[Platform, People], list[Row]]]]:
    table: list[tuple[str, Callable[[Platform, People], list[Row]]]] = [
        ("chaos", lambda p, _people: chaos.run(p, options.chaos, audit)),
        ("load", lambda p, people: load.run(p, people, options.load)),
        ("fuzz", lambda p, people: fuzz.run(p, people, options.fuzz, audit)),
        ("cross-tenant", lambda p, people: tenancy.run(p, people, audit)),
        ("redirects", lambda p, people: redirects.run(p, people, audit)),
        ("headers", lambda _p, _people: [redirects.headers_row(audit)]),
    ]
    return [(name, probe) for name, probe in table if name in selected]


def run(args: argparse.Namespace, options: Options) -> list[Row]:
    selected = args.only or list(PROBES)
    audit = HeaderAudit()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="proof-") as tmp:
        try:
            with platform(Path(tmp), use_rabbitmq=options.rabbitmq) as running:
                people = seed(running, quick=options.quick)
                for name, probe in probes(selected, options, audit):
                    started = time.monotonic()
                    _progress(f"== {name}")
                    rows.extend(probe(running, people))
                    _progress(f"== {name} done in {time.monotonic() - started:.0f} s")
                _still_running(running, rows)
        finally:
            _keep_logs(Path(tmp), args.output.parent / "logs")
    return rows


def _keep_logs(workdir: Path, keep: Path) -> None:
    """The processes' logs outlive the run's directory, for whoever reads a missed target."""
    shutil.rmtree(keep, ignore_errors=True)
    keep.mkdir(parents=True, exist_ok=True)
    for log in workdir.glob("*.log"):
        shutil.copy2(log, keep / log.name)


def _still_running(running: Platform, rows: list[Row]) -> None:
    """Nothing but the killed workers may have needed restarting."""
    if running.scheduler.exits:
        rows.append(Row("processes", "the scheduler under its supervisor",
                        f"exited {len(running.scheduler.exits)} time(s)", "never exits",
                        [f"the scheduler exited: {[asdict(e) for e in running.scheduler.exits]}"
                         ]))


def main(argv: Sequence[str] | None = None) -> int:
    args, options = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    try:
        rows = run(args, options)
    except KeyboardInterrupt:
        print("proof: interrupted; everything it started is stopped, nothing written",
              file=sys.stderr)
        return 130
    except (ServiceError, ServerError, WrkError, MeasurementError) as error:
        print(f"proof: {error}", file=sys.stderr)
        return 2
    print(format_table(rows))
    write_json(args.output, rows, {"quick": options.quick, "seconds": round(
        time.monotonic() - started), "chaos": asdict(options.chaos),
        "load": options.load.describe(), "fuzz": asdict(options.fuzz),
        "broker": "rabbitmq" if options.rabbitmq else "redis"})
    missed = [row.name for row in rows if row.problems]
    print(f"\n{'targets missed: ' + ', '.join(missed) if missed else 'every target met'} "
          f"({time.monotonic() - started:.0f} s); written to {_shown(args.output)}")
    return 1 if missed else 0


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM takes the Ctrl+C path, so everything is stopped


def _progress(message: str) -> None:
    print(f"proof: {message}", file=sys.stderr, flush=True)


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
