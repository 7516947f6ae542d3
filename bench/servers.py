"""gunicorn servers for the run: started with identical flags, stopped with SIGTERM, always."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gunicorn.config import Config

from bench.http import request_status
from bench.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
BARE_CONFIG = Path(__file__).resolve().parent / "gunicorn_bare.py"
READY_TIMEOUT = 30.0
# gunicorn.conf.py's graceful_timeout, plus time for the master to reap its workers.
STOP_TIMEOUT = 25.0


class ServerError(Exception):
    """A server did not start or did not stop; the message carries the tail of its log."""


@dataclass(frozen=True)
class GunicornOptions:
    workers: int
    worker_class: str
    threads: int

    def flags(self, port: int) -> list[str]:
        flags = ["--workers", str(self.workers), "--worker-class", self.worker_class,
                 "--threads", str(self.threads), "--bind", f"127.0.0.1:{port}"]
        if "control_socket_disable" in Config().settings:
            # gunicorn >= 25.1 opens a control socket at one fixed per-user path: the two servers
            # (or any other gunicorn of this user) would take it from each other.
            flags.append("--no-control-socket")
        return flags


@dataclass(frozen=True)
class ServerSpec:
    name: str
    app: str  # gunicorn's module:variable
    env: dict[str, str]
    ready_path: str
    config: Path | None = None  # None: gunicorn reads ./gunicorn.conf.py, as in production


# The master process of each running server, by name (for --profile).
STARTED: dict[str, int] = {}


@contextmanager
def running(spec: ServerSpec, options: GunicornOptions, log_dir: Path) -> Iterator[str]:
    """Start the server, yield its base URL once it answers, and stop it however the block ends."""
    port = free_port()
    command = [str(BIN / "gunicorn"), spec.app, *options.flags(port)]
    if spec.config is not None:
        command += ["--config", str(spec.config)]
    log_path = log_dir / f"{spec.name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env=spec.env, stdout=log, stderr=subprocess.STDOUT,
            # Its own process group: Ctrl+C reaches only us, and we stop the server in order.
            start_new_session=True, preexec_fn=die_with_parent,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_ready(process, spec, url, log_path)
            STARTED[spec.name] = process.pid
            yield url
        finally:
            STARTED.pop(spec.name, None)
            stop(process, spec.name, log_path)


def die_with_parent() -> None:
    """If the harness is killed outright (no finally runs), the kernel still stops the server."""
    if sys.platform == "linux":
        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _wait_ready(process: subprocess.Popen[bytes], spec: ServerSpec, url: str,
                log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"{spec.name} exited with code {process.returncode} while "
                              f"starting:\n{tail(log_path)}")
        try:
            if request_status(url + spec.ready_path, timeout=1.0) == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise ServerError(f"{spec.name} did not answer {spec.ready_path} within {READY_TIMEOUT:.0f} s:"
                      f"\n{tail(log_path)}")


def stop(process: subprocess.Popen[bytes], name: str, log_path: Path) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        # The master is not reaped yet, so its pid still names our group and nobody else's.
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise ServerError(f"{name} ignored SIGTERM for {STOP_TIMEOUT:.0f} s and was killed:\n"
                          f"{tail(log_path)}") from None


def tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"
