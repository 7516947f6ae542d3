"""Turn samples into figures: one dict per entry, printed as a table and written as JSON."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from statistics import median
from typing import Any

from bench.measure import Measurement, RunOptions, Sample
from bench.servers import ROOT, GunicornOptions

Run = dict[str, Any]


def summarise(entries: Sequence[Measurement], samples: Mapping[str, list[Sample]]) -> list[Run]:
    """Medians over the rounds; each ratio divides medians measured in this same run."""
    values = {name: median(s.value for s in got) for name, got in samples.items()}
    return [_summary(entry, samples[entry.name], values) for entry in entries]


def _summary(entry: Measurement, got: list[Sample], values: Mapping[str, float]) -> Run:
    value, baseline_value = values[entry.name], values[entry.baseline]
    detail: dict[str, int] = {}
    for sample in got:
        for kind, count in sample.error_detail.items():
            detail[kind] = detail.get(kind, 0) + count
    run: Run = {
        "name": entry.name,
        "value": round(value, 1),
        "unit": entry.unit,
        "baseline_name": entry.baseline,
        "baseline_value": round(baseline_value, 1),
        "ratio": round(value / baseline_value, 3) if baseline_value else None,
        "p50_ms": _median_ms(s.p50_ms for s in got),
        "p99_ms": _median_ms(s.p99_ms for s in got),
        "errors": sum(s.errors for s in got),
        "samples": [round(s.value, 1) for s in got],
        # The worst round: one disturbed round is enough to distrust the spread.
        "other_cpu": _max_rounded(s.other_cpu for s in got),
    }
    if detail:
        run["error_detail"] = detail
    run.update(_extra(got, exclude=run.keys()))
    return run


def _extra(got: list[Sample], exclude: Iterable[str]) -> Run:
    """Each extra figure over the rounds: the median of numbers, the last of anything else."""
    values: dict[str, list[float | str]] = {}
    for sample in got:
        for key, value in sample.extra.items():
            values.setdefault(key, []).append(value)
    taken = set(exclude)
    return {key: _typical(found) for key, found in values.items() if key not in taken}


def _typical(values: list[float | str]) -> float | str:
    numbers = [v for v in values if not isinstance(v, str)]
    return round(median(numbers), 3) if len(numbers) == len(values) else values[-1]


def _median_ms(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(median(known), 3) if known else None


def _max_rounded(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(max(known), 2) if known else None


# -- table --------------------------------------------------------------------------------------
HEADERS = ("entry", "value", "unit", "p50", "p99", "ratio", "baseline", "spread", "other cpu",
           "errors")
RIGHT_ALIGNED = {"value", "p50", "p99", "ratio", "spread", "other cpu"}
# CPUs busy elsewhere above which a figure says more about the neighbours than about the code.
NOISY_OTHER_CPU = 0.1


def format_table(runs: Sequence[Run]) -> str:
    rows = [HEADERS, *(_row(run) for run in runs)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]
    lines = ["  ".join(cell.rjust(width) if header in RIGHT_ALIGNED else cell.ljust(width)
                       for header, cell, width in zip(HEADERS, row, widths, strict=True)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines + _notes(runs) + _warnings(runs))


def _notes(runs: Sequence[Run]) -> list[str]:
    """One line per entry with extra figures (commits/s, worker settings …)."""
    notes = []
    for run in runs:
        extra = {key: value for key, value in run.items() if key not in _ENTRY_KEYS}
        if extra:
            shown = ", ".join(f"{key} {_figure(value)}" for key, value in extra.items())
            notes.append(f"  {run['name']}: {shown}")
    return ["", *notes] if notes else []


_ENTRY_KEYS = frozenset({"name", "value", "unit", "baseline_name", "baseline_value", "ratio",
                         "p50_ms", "p99_ms", "errors", "samples", "other_cpu", "error_detail"})


def _figure(value: object) -> str:
    if isinstance(value, float) and value >= 100:
        return f"{value:,.0f}"
    return str(value)


def _warnings(runs: Sequence[Run]) -> list[str]:
    warnings = []
    failed = [run["name"] for run in runs if run["errors"]]
    if failed:
        warnings.append(f"!! errors during {', '.join(failed)}: those figures include failed "
                        "responses and are not comparable")
    noisy = [run for run in runs if (run["other_cpu"] or 0) > NOISY_OTHER_CPU]
    if noisy:
        worst = max(run["other_cpu"] for run in noisy)
        warnings.append(f"!! other processes kept up to {worst:.2f} CPUs busy during "
                        f"{', '.join(run['name'] for run in noisy)}: figures are low and noisy; "
                        "rerun on a quiet machine")
    return ["", *warnings] if warnings else []


def _row(run: Run) -> tuple[str, ...]:
    return (
        run["name"],
        f"{run['value']:,.0f}" if run["value"] >= 100 else f"{run['value']:.3g}",
        run["unit"],
        _ms(run["p50_ms"]),
        _ms(run["p99_ms"]),
        "-" if run["ratio"] is None else f"{run['ratio']:.2f}",
        run["baseline_name"],
        _spread(run["samples"]),
        "-" if run["other_cpu"] is None else f"{run['other_cpu']:.2f}",
        _errors(run),
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} ms"


def _spread(samples: list[float]) -> str:
    """Range over the rounds relative to the median: how far one round's figure can be trusted."""
    middle = median(samples) if samples else 0
    if len(samples) < 2 or not middle:
        return "-"
    return f"{(max(samples) - min(samples)) / middle:.0%}"


def _errors(run: Run) -> str:
    if not run["errors"]:
        return "0"
    detail = ", ".join(f"{kind} {count}" for kind, count in run.get("error_detail", {}).items())
    return f"!! {run['errors']} ({detail})"


# -- JSON ---------------------------------------------------------------------------------------
def machine_meta() -> Run:
    """When, on which commit and on what kind of machine a run was made."""
    status = _git("status", "--porcelain")
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "uncommitted_changes": None if status is None else bool(status),
        "cpu_count": os.cpu_count(),
        "machine": f"{platform.system()} {platform.machine()}, {_cpu_model()}",
        "load_average_at_start": [round(load, 2) for load in os.getloadavg()],
        "python": platform.python_version(),
    }


def collect_meta(options: RunOptions, gunicorn: GunicornOptions, wrk_version: str) -> Run:
    return {
        **machine_meta(),
        "versions": {"flask": metadata.version("flask"), "gunicorn": metadata.version("gunicorn"),
                     "wrk": wrk_version},
        "wrk": {"threads": options.wrk_threads, "connections": options.connections,
                "duration_s": options.duration, "warmup_s": options.warmup,
                "rounds": options.rounds},
        "gunicorn": {"workers": gunicorn.workers, "worker_class": gunicorn.worker_class,
                     "threads": gunicorn.threads},
        "pipeline": {"messages": options.messages, "audit_rows": options.audit_rows,
                     "dramatiq_queue_prefetch": options.prefetch,
                     "dramatiq": metadata.version("dramatiq")},
    }


def write_json(path: Path, runs: Sequence[Run], meta: Run) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": meta, "runs": list(runs)}, indent=2) + "\n")


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"
