"""CPU used outside the benchmark while it measured.

On a 2-core machine one busy neighbour (a test suite, a browser) halves the figures; the table
says so instead of letting a slow run pass for a regression. "Ours" is this process and its
descendants (the servers, wrk) plus PostgreSQL and Redis, which serve the servers; each counted
with the children it has reaped, so that a process that came and went between two snapshots (a
parallel query's worker, a closed connection's backend, wrk) counts as ours, not as a neighbour.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

BACKENDS = frozenset({"postgres", "redis-server"})
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class Snapshot:
    at: float
    busy: float  # CPU seconds the whole machine spent running something
    # CPU seconds per live process of ours, its own and its reaped children's
    ours: dict[int, float]


def snapshot() -> Snapshot | None:
    """None where there is no /proc to read."""
    try:
        busy, processes = _busy_seconds(), _processes()
    except OSError:
        return None
    return Snapshot(time.monotonic(), busy, _ours(processes))


def other_cpu(before: Snapshot | None, after: Snapshot | None) -> float | None:
    """Average number of CPUs busy with something else between the two snapshots."""
    if before is None or after is None or after.at <= before.at:
        return None
    # A process of ours that ended meanwhile left its CPU time, all of it, to the one of ours
    # that reaped it (the postmaster, a gunicorn master, this process): the sums cover it once.
    ours = sum(after.ours.values()) - sum(before.ours.values())
    return max(0.0, after.busy - before.busy - ours) / (after.at - before.at)


def _busy_seconds() -> float:
    # user nice system idle iowait irq softirq steal: interrupt time is left out because it is
    # not charged to any process (loopback traffic is ours); steal is another tenant's.
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, _irq, _softirq, steal = fields
    return (user + nice + system + steal) / _TICKS


def _processes() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, command name, CPU seconds so far: its own and its reaped
    children's)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited while we looked
            continue
        # The command name is in parentheses and may itself contain spaces or parentheses.
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        rest = stat[stat.rindex(")") + 2 :].split()
        # utime, stime, cutime, cstime (proc(5): fields 14 to 17)
        cpu = sum(int(field) for field in rest[11:15]) / _TICKS
        found[int(entry.name)] = (int(rest[1]), name, cpu)
    return found


def _ours(processes: dict[int, tuple[int, str, float]]) -> dict[int, float]:
    children: dict[int, list[int]] = defaultdict(list)
    for pid, (parent, _name, _cpu) in processes.items():
        children[parent].append(pid)
    mine, pending = set(), [os.getpid()]
    while pending:
        pid = pending.pop()
        mine.add(pid)
        pending.extend(children[pid])
    return {pid: cpu for pid, (_parent, name, cpu) in processes.items()
            if pid in mine or name in BACKENDS}


def wait_until_idle(*, below: float = 0.5, quiet_for: float = 0.3, timeout: float = 15.0) -> bool:
    """Wait until the machine keeps fewer than `below` CPUs busy for `quiet_for` seconds, e.g.
    for a server to finish what a wrk run left in flight (wrk stops waiting at its deadline, the
    server does not). False if it never got that quiet within `timeout` (or there is no /proc)."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            start, busy = time.monotonic(), _busy_seconds()
            time.sleep(quiet_for)
            if (_busy_seconds() - busy) / (time.monotonic() - start) < below:
                return True
    except OSError:
        return False
    return False
