"""`python -m bench`: measure the suite against the platform and a bare Flask app, side by side."""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from types import FrameType

from bench import backends, floor, interference
from bench.http import WrkError, wrk_version
from bench.measure import Context, Measurement, MeasurementError, RunOptions, Sample, Target
from bench.profile import profiling
from bench.report import collect_meta, format_table, summarise, write_json
from bench.servers import (
    BARE_CONFIG,
    STARTED,
    GunicornOptions,
    ServerError,
    ServerSpec,
    running,
)
from bench.suite import ENTRIES

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="3 s per measurement, 1 s warm-up, one round, fewer messages and rows")
    parser.add_argument("--duration", type=_positive, help="seconds per measurement (default 10)")
    parser.add_argument("--warmup", type=_non_negative,
                        help="seconds of load per entry before measuring (default 3)")
    parser.add_argument("--rounds", type=_positive,
                        help="measurements per entry, each round running every entry (default 3)")
    parser.add_argument("--connections", type=_positive, default=16,
                        help="wrk connections (default 16)")
    parser.add_argument("--wrk-threads", type=_positive, default=2,
                        help="wrk threads (default 2)")
    parser.add_argument("--workers", type=_positive, default=2,
                        help="gunicorn workers, both apps (default 2)")
    parser.add_argument("--worker-class", default="gthread",
                        help="gunicorn worker class, both apps (default gthread)")
    parser.add_argument("--threads", type=_positive, default=8,
                        help="gunicorn threads per worker, both apps (default 8)")
    parser.add_argument("--messages", type=_positive,
                        help="messages (dramatiq-noop) and events (pipeline) per measurement "
                        "(default 5000; --quick 1000)")
    parser.add_argument("--audit-rows", type=_positive,
                        help="rows per audit measurement (default 10000; --quick 2000)")
    parser.add_argument("--prefetch", type=_positive,
                        help="dramatiq_queue_prefetch for both worker processes (default: "
                        "Dramatiq's own, threads x 2)")
    parser.add_argument("--reload-data", action="store_true",
                        help="load the metrics entries' database (bench_metrics: 1M accounts, "
                        "5M events) afresh instead of reusing it")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy the platform's gunicorn workers during each of its entries; "
                        "collapsed stacks go to bench/results/profiles/, a summary to stderr")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="measure only this entry and its baseline (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the entries and exit")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json",
                        help="where to write the JSON (default bench/results/latest.json; other "
                        "names under bench/results/ are ignored by git)")
    args = parser.parse_args(argv)
    if args.connections < args.wrk_threads:
        parser.error("--connections must be at least --wrk-threads")
    try:
        args.entries = select(ENTRIES, args.only)
    except KeyError as error:
        parser.error(f"no entry named {error}; see --list")
    return args


def _positive(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _non_negative(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def select(entries: Sequence[Measurement], only: Sequence[str] | None) -> list[Measurement]:
    """The named entries plus the baselines they are divided by, in suite order."""
    if not only:
        return list(entries)
    by_name = {entry.name: entry for entry in entries}
    wanted = {by_name[name].name for name in only}
    wanted |= {by_name[name].baseline for name in wanted}
    return [entry for entry in entries if entry.name in wanted]


def run_options(args: argparse.Namespace) -> RunOptions:
    def pick(given: int | None, normal: int, quick: int) -> int:
        return given if given is not None else quick if args.quick else normal

    return RunOptions(
        duration=pick(args.duration, 10, 3),
        warmup=pick(args.warmup, 3, 1),
        rounds=pick(args.rounds, 3, 1),
        connections=args.connections,
        wrk_threads=args.wrk_threads,
        messages=pick(args.messages, 5_000, 1_000),
        audit_rows=pick(args.audit_rows, 10_000, 2_000),
        prefetch=args.prefetch,
        reload_data=args.reload_data,
        profile=args.profile,
    )


@contextmanager
def servers(entries: Sequence[Measurement], env: dict[str, str], options: GunicornOptions,
            log_dir: Path) -> Iterator[dict[Target, str]]:
    if not any(entry.needs_servers for entry in entries):
        yield {}
        return
    platform = ServerSpec("platform", "wsgi:app", env, ready_path="/api/health/live")
    bare = ServerSpec("bare-flask", "bench.bare_app:app", backends.clean_env(), ready_path="/",
                      config=BARE_CONFIG)
    with ExitStack() as stack:
        _progress(f"starting gunicorn ({options.workers} x {options.worker_class}, "
                  f"{options.threads} threads) for the platform and the bare app")
        urls: dict[Target, str] = {"app": stack.enter_context(running(platform, options, log_dir)),
                                   "bare": stack.enter_context(running(bare, options, log_dir))}
        if any(getattr(entry, "target", "app") == "floor" for entry in entries):
            floors = ServerSpec("floor", "bench.floor_app:app", floor.server_env(log_dir),
                                ready_path="/ready", config=BARE_CONFIG)
            urls["floor"] = stack.enter_context(running(floors, options, log_dir))
        yield urls


def measure(entries: Sequence[Measurement], ctx: Context) -> dict[str, list[Sample]]:
    """Warm every entry, then run the whole suite once per round, so that each entry and its
    baseline are measured minutes apart at most, under the same conditions."""
    for entry in entries:
        _progress(f"warming up {entry.name}")
        entry.warm_up(ctx)
    samples: dict[str, list[Sample]] = {entry.name: [] for entry in entries}
    rounds = ctx.options.rounds
    for number in range(1, rounds + 1):
        for entry in entries:
            sample = _watched(entry, ctx)
            samples[entry.name].append(sample)
            flag = f"  !! {sample.errors} errors" if sample.errors else ""
            _progress(f"round {number}/{rounds}  {entry.name:<16} {sample.value:>12,.1f} "
                      f"{entry.unit}{flag}")
    return samples


def _watched(entry: Measurement, ctx: Context) -> Sample:
    before = interference.snapshot()
    with _profiled(entry, ctx):
        sample = entry.measure(ctx)
    return replace(sample, other_cpu=interference.other_cpu(before, interference.snapshot()))


def _profiled(entry: Measurement, ctx: Context) -> AbstractContextManager[None]:
    platform = STARTED.get("platform")
    if not ctx.options.profile or platform is None or not entry.needs_servers \
            or getattr(entry, "target", "app") != "app":
        return nullcontext()
    return profiling(platform, entry.name, ctx.options.duration)


def run(entries: Sequence[Measurement], options: RunOptions,
        gunicorn: GunicornOptions) -> dict[str, list[Sample]]:
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        workdir = Path(tmp)
        _progress(f"resetting {backends.DATABASE_NAME} and {backends.REDIS_URL}, migrating")
        env = backends.prepare(workdir / "instance")
        with servers(entries, env, gunicorn, workdir) as urls:
            return measure(entries, Context(urls, env, options, workdir))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for entry in args.entries:
            print(f"{entry.name}  ({entry.unit}, baseline {entry.baseline})")
        return 0
    options = run_options(args)
    gunicorn = GunicornOptions(args.workers, args.worker_class, args.threads)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        meta = collect_meta(options, gunicorn, wrk_version())
        samples = run(args.entries, options, gunicorn)
    except KeyboardInterrupt:
        print("bench: interrupted; servers and workers stopped, nothing written", file=sys.stderr)
        return 130
    except (backends.SetupError, ServerError, WrkError, MeasurementError) as error:
        print(f"bench: {error}", file=sys.stderr)
        return 1
    runs = summarise(args.entries, samples)
    print(format_table(runs))
    write_json(args.output, runs, meta)
    print(f"\nwritten to {_shown(args.output)}")
    return 0


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM takes the Ctrl+C path, so the servers are stopped


def _progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
