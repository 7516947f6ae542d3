"""Start the platform's real processes (dramatiq worker, scheduler) for integration tests, and
look at processes through /proc (Linux)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def platform_env(**values: str | None) -> dict[str, str]:
    """The environment a deployed process would get; unset keys are removed."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "BROKER_URL", "SMTP_URL", "APP_ENV")}
    env.update({"PYTHONPATH": str(ROOT), "LOG_FORMAT": "text", "PYTHONUNBUFFERED": "1"})
    for key, value in values.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


class Process:
    def __init__(self, args: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.args = args
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(args, cwd=ROOT, env=dict(env), stdout=self._log,
                                      stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group (dramatiq forks worker processes)."""
        if self.alive():
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the main process only: it stops its own children gracefully."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")


def dramatiq_worker(env: Mapping[str, str], log_path: Path, *, processes: int = 1,
                    threads: int = 4) -> Process:
    return Process([str(BIN / "dramatiq"), "workers.boot", "--processes", str(processes),
                    "--threads", str(threads)], env, log_path)


def scheduler(env: Mapping[str, str], log_path: Path) -> Process:
    return Process([sys.executable, "-m", "scheduler"], env, log_path)


def wait_until(condition: Callable[[], object], timeout: float, message: str,
               interval: float = 0.1) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s: {message}")


def run(args: list[str], env: Mapping[str, str],
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, env=dict(env), capture_output=True, text=True,
                          timeout=timeout, check=False)


def _state_and_parent(pid: int) -> tuple[str, int] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (command) state ppid ...": the command may hold spaces and parentheses.
    state, parent = stat.rpartition(")")[2].split()[:2]
    return state, int(parent)


def _all_pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def running(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting to be reaped."""
    found = _state_and_parent(pid)
    return found is not None and found[0] != "Z"


def children(pid: int) -> list[int]:
    """The running child processes of `pid`."""
    return sorted(child for child in _all_pids()
                  if (found := _state_and_parent(child)) and found[1] == pid and found[0] != "Z")


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def pids_with_env(name: str, value: str) -> list[int]:
    """Running processes whose environment has name=value, wherever they sit in the tree (an
    orphan is re-parented, but keeps its environment)."""
    entry = f"{name}={value}".encode()
    found = []
    for pid in _all_pids():
        try:
            environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if entry in environment and running(pid):
            found.append(pid)
    return found
