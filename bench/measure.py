"""What an entry of the suite is: something that yields samples and names the baseline it is
compared with. HTTP endpoints live in `bench.http`; `Throughput` wraps any other measurement."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

Target = Literal["app", "bare", "floor"]


@dataclass(frozen=True)
class RunOptions:
    duration: int  # seconds per measurement (wrk takes whole seconds)
    warmup: int  # seconds of unrecorded load per entry before its first measurement
    rounds: int
    connections: int
    wrk_threads: int
    messages: int = 5_000  # messages or events per pipeline measurement
    audit_rows: int = 10_000  # rows per audit measurement
    prefetch: int | None = None  # dramatiq_queue_prefetch for the workers; None: Dramatiq's own
    reload_data: bool = False  # load the metrics entries' database afresh, even if it is there
    profile: bool = False  # py-spy the platform's workers during each app entry (bench.profile)


@dataclass(frozen=True)
class Context:
    """What a measurement may use: the running servers, the platform's environment, the options."""

    urls: dict[Target, str]  # base URL per running server; empty if no entry needs servers
    env: dict[str, str]  # the platform's environment (DATABASE_URL, REDIS_URL, ...)
    options: RunOptions
    workdir: Path  # private temporary directory, removed at the end of the run


@dataclass(frozen=True)
class Sample:
    value: float
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: int = 0
    error_detail: dict[str, int] = field(default_factory=dict)
    other_cpu: float | None = None  # CPUs busy outside the benchmark meanwhile (interference)
    # Further figures of the same round (e.g. commits/s), written as extra keys of the entry.
    extra: dict[str, float | str] = field(default_factory=dict)


class MeasurementError(Exception):
    """A non-HTTP measurement could not complete (a worker died, work never finished)."""


class Measurement(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def unit(self) -> str: ...

    @property
    def baseline(self) -> str:
        """The entry this one is divided by; a baseline names itself."""
        ...

    @property
    def needs_servers(self) -> bool: ...

    def warm_up(self, ctx: Context) -> None: ...

    def measure(self, ctx: Context) -> Sample: ...


@dataclass(frozen=True)
class Throughput:
    """A non-HTTP measurement: `run` does a fixed amount of work (about `ctx.options.duration`
    seconds, or `ctx.options.messages` items) and returns units per second (e.g. events/s through
    the pipeline), or a whole `Sample` when it has more to say."""

    name: str
    unit: str
    baseline: str
    run: Callable[[Context], float | Sample]
    needs_servers: bool = False

    def warm_up(self, ctx: Context) -> None:
        return None

    def measure(self, ctx: Context) -> Sample:
        result = self.run(ctx)
        return result if isinstance(result, Sample) else Sample(value=result)


def p99(values: list[float]) -> float:
    """The 99th percentile of `values` (nearest rank), in their own unit."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
