"""Dramatiq worker processes for the pipeline entries: both started with the same flags and the
same Dramatiq settings, always stopped (SIGTERM, then SIGKILL to the group), however a run ends."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.measure import MeasurementError
from bench.servers import BIN, ROOT, die_with_parent, stop, tail

PROCESSES = 1
THREADS = 8


@dataclass(frozen=True)
class WorkerOptions:
    prefetch: int | None = None  # dramatiq_queue_prefetch; None leaves Dramatiq's default

    def flags(self) -> list[str]:
        return ["--processes", str(PROCESSES), "--threads", str(THREADS)]

    def env(self, base: Mapping[str, str]) -> dict[str, str]:
        env = {**base, "PYTHONUNBUFFERED": "1"}
        if self.prefetch is not None:
            env["dramatiq_queue_prefetch"] = str(self.prefetch)
        return env

    def describe(self) -> dict[str, float | str]:
        """What the entry records about its worker."""
        if self.prefetch is None:
            prefetch, source = THREADS * 2, "Dramatiq's default (threads x 2)"
        else:
            prefetch, source = self.prefetch, "dramatiq_queue_prefetch"
        return {"worker": f"{PROCESSES} process x {THREADS} threads", "prefetch": prefetch,
                "prefetch_from": source}


@dataclass(frozen=True)
class WorkerProcess:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def check(self) -> None:
        """Raise if the worker has exited: whatever we wait for would never come."""
        if self.popen.poll() is not None:
            raise MeasurementError(f"{self.name} worker exited with code {self.popen.returncode}:"
                                   f"\n{tail(self.log_path)}")


@contextmanager
def dramatiq_worker(name: str, broker: str, env: Mapping[str, str], options: WorkerOptions,
                    log_dir: Path) -> Iterator[WorkerProcess]:
    """`dramatiq BROKER --processes 1 --threads 8`, running until the block ends."""
    log_path = log_dir / f"{name}.log"
    command = [str(BIN / "dramatiq"), broker, *options.flags()]
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            command, cwd=ROOT, env=options.env(env), stdout=log, stderr=subprocess.STDOUT,
            # Its own process group: Ctrl+C reaches only us, and we stop the worker in order.
            start_new_session=True, preexec_fn=die_with_parent,
        )
        try:
            yield WorkerProcess(name, popen, log_path)
        finally:
            stop(popen, name, log_path)


def wait_for_count(count: Callable[[], int], target: int, worker: WorkerProcess, *,
                   interval: float, timeout: float) -> float:
    """Poll `count` every `interval` seconds until it reaches `target`; return the time then."""
    deadline = time.perf_counter() + timeout
    while (now := time.perf_counter()) < deadline:
        if count() >= target:
            return now
        worker.check()
        time.sleep(interval)
    raise MeasurementError(f"{worker.name}: {count()} of {target} done after {timeout:.0f} s; "
                           f"see {worker.log_path}:\n{tail(worker.log_path)}")
