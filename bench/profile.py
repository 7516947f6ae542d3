"""`--profile`: py-spy samples the platform's gunicorn workers while an entry is measured.

Each app entry's samples are written as collapsed stacks (`bench/results/profiles/<entry>.txt`,
readable by flamegraph tools and speedscope) and summarised: the share of the workers' busy
samples spent in each part of a request (session loading, the rate limits, the CSP nonce,
template rendering …) and the functions that spend most themselves. Only samples of threads
holding the GIL count (`--gil`): where the workers' CPU goes, which is what limits throughput on
a machine whose cores wrk, Redis and PostgreSQL share; time spent waiting for Redis or the
database shows only as the Python work around it.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.servers import BIN

PROFILES = Path(__file__).resolve().parent / "results" / "profiles"
RATE = 97  # samples per second, off the beat of anything periodic

# What a part of a request is, by a frame on its stack (the first match wins, in this order).
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("static files (WhiteNoise)", ("WhiteNoise.serve",)),
    ("session loading", ("_load_session",)),
    ("rate limits", ("_count_request", "_add_headers", "limits.py:status")),
    ("CSP nonce and security headers (Talisman)", ("flask_talisman",)),
    ("CSRF", ("flask_wtf/csrf",)),
    ("template rendering", ("render_template", "jinja2/")),
    ("request log line", ("web/context.py:_finish", "logging/__init__")),
    ("commit at the request boundary", ("_commit_request",)),
    ("view, other", ("dispatch_request",)),
    ("gunicorn and WSGI plumbing", ("gunicorn/", "werkzeug/", "flask/")),
)
BACKENDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Redis (redis-py, incl. socket waits)", ("redis/",)),
    ("SQL (SQLAlchemy, psycopg)", ("sqlalchemy/", "psycopg/")),
)


def py_spy() -> str | None:
    found = BIN / "py-spy"
    return str(found) if found.exists() else shutil.which("py-spy")


@contextmanager
def profiling(pid: int, name: str, seconds: int) -> Iterator[None]:
    """Sample `pid` and its children (gunicorn's workers) for `seconds` while the block runs."""
    binary = py_spy()
    if binary is None:
        raise RuntimeError("py-spy is not installed (pip install py-spy)")
    PROFILES.mkdir(parents=True, exist_ok=True)
    output = PROFILES / f"{name}.txt"
    process = subprocess.Popen(
        [binary, "record", "--pid", str(pid), "--subprocesses", "--rate", str(RATE),
         "--duration", str(seconds), "--gil", "--format", "raw", "--output", str(output)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield
    finally:
        _, errors = process.communicate(timeout=seconds + 60)
        if process.returncode != 0:
            print(f"bench: py-spy failed on {name}: {errors.decode(errors='replace')[:500]}")
    print(summary(name, output))


def _stacks(path: Path) -> Counter[str]:
    stacks: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit() and not _idle(stack):
            stacks[stack] += int(count)
    return stacks


def _idle(stack: str) -> bool:
    """A worker thread waiting for work, or gunicorn's main loop sleeping."""
    leaf = stack.rsplit(";", 1)[-1]
    return any(word in leaf for word in ("wait (threading", "select (selectors", "_worker (",
                                         "run_for_one", "sleep (gunicorn", "poll (selectors"))


def _share(stacks: Counter[str], patterns: tuple[str, ...]) -> int:
    return sum(count for stack, count in stacks.items() if any(p in stack for p in patterns))


def summary(name: str, path: Path, top: int = 12) -> str:
    if not path.exists():
        return f"  {name}: no profile"
    stacks = _stacks(path)
    total = sum(stacks.values()) or 1
    lines = [f"\nprofile of {name} ({total} samples holding the GIL at {RATE}/s, {path}):"]
    claimed: Counter[str] = Counter()
    for stack, count in stacks.items():
        part = next((label for label, patterns in PARTS if any(p in stack for p in patterns)),
                    "other")
        claimed[part] += count
    lines.append("  by part of the request (exclusive, first match):")
    for label, _ in (*PARTS, ("other", ())):
        if claimed[label]:
            lines.append(f"    {claimed[label] / total:6.1%}  {label}")
    lines.append("  backends (inclusive, across the parts above):")
    for label, patterns in BACKENDS:
        lines.append(f"    {_share(stacks, patterns) / total:6.1%}  {label}")
    leaves: Counter[str] = Counter()
    for stack, count in stacks.items():
        leaves[stack.rsplit(";", 1)[-1]] += count
    lines.append(f"  top {top} functions by their own time:")
    for leaf, count in leaves.most_common(top):
        lines.append(f"    {count / total:6.1%}  {leaf[:110]}")
    return "\n".join(lines)
