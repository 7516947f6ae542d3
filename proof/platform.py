"""The platform as production runs it, from the outside: the Procfile's processes (gunicorn,
dramatiq, the scheduler) under a supervisor that restarts any that exits, on PostgreSQL as a
plain role (through a proxy that can go silent), a private Redis, a private RabbitMQ node (or
the Redis broker where RabbitMQ is not installed) and an SMTP sink in a process of its own.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench import backends
from bench.servers import BIN, ROOT, GunicornOptions, ServerSpec, running, stop
from bench.smtp_sink import SmtpSink, smtp_sink
from proof.services import DatabaseProxy, PrivateRabbitMQ, PrivateRedis, spawn

log = logging.getLogger("proof")

# Its own database and role: never the tests' or bench's. Redis is a private server.
PROOF = backends.Backends("proof_platform", "proof_platform_app", redis_url="")
# The Procfile's defaults: WEB_CONCURRENCY, WEB_THREADS, WORKER_PROCESSES, WORKER_THREADS.
GUNICORN = GunicornOptions(workers=2, worker_class="gthread", threads=8)
WORKER_PROCESSES, WORKER_THREADS = 2, 8
# A supervisor's pause before it starts an exited process again (systemd's RestartSec).
RESTART_PAUSE_S = 0.5
UNLIMITED = "100000000 per minute"


@dataclass
class Exit:
    pid: int
    code: int
    at: float  # time.monotonic()


@dataclass
class Supervised:
    """One Procfile process, started again whenever it exits, as compose's `restart:` does."""

    name: str
    command: list[str]
    env: dict[str, str]
    log_path: Path
    exits: list[Exit] = field(default_factory=list)
    started_at: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._popen = self._spawn()
        self._watcher = threading.Thread(target=self._watch, name=f"supervise-{self.name}",
                                         daemon=True)
        self._watcher.start()

    @property
    def pid(self) -> int:
        with self._lock:
            return self._popen.pid

    def _spawn(self) -> subprocess.Popen[bytes]:
        popen = spawn(self.command, log_path=self.log_path, env=self.env, cwd=ROOT)
        self.started_at.append(time.monotonic())
        return popen

    def _watch(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                popen = self._popen
            code = popen.wait()
            if self._stopping.is_set():
                return
            self.exits.append(Exit(popen.pid, code, time.monotonic()))
            log.info("%s (pid %d) exited with %d; starting it again", self.name, popen.pid,
                     code)
            if self._stopping.wait(RESTART_PAUSE_S):
                return
            with self._lock:
                self._popen = self._spawn()

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            popen = self._popen
        stop(popen, self.name, self.log_path)
        self._watcher.join(5)


@dataclass
class Platform:
    url: str
    env: dict[str, str]  # what the processes run with (DATABASE_URL through the proxy)
    direct_env: dict[str, str]  # the same, straight to PostgreSQL: for seeding and counting
    workdir: Path
    redis: PrivateRedis
    rabbitmq: PrivateRabbitMQ | None  # None: the broker is the Redis
    database: DatabaseProxy
    sink: SmtpSink
    journal: Path
    worker: Supervised
    scheduler: Supervised

    @property
    def broker_kind(self) -> str:
        return "redis" if self.rabbitmq is None else "rabbitmq"


def _environment(instance: Path, redis_url: str, broker_url: str, smtp_url: str,
                 redis_is_broker: bool) -> dict[str, str]:
    env = backends.platform_env(instance, PROOF)
    env.update({
        "REDIS_URL": redis_url,
        "BROKER_URL": broker_url,
        "SMTP_URL": smtp_url,
        "RATE_LIMIT_ANONYMOUS": UNLIMITED,
        "RATE_LIMIT_AUTHENTICATED": UNLIMITED,
        "RATE_LIMIT_AUTH_ENDPOINTS": UNLIMITED,
        # Behind a TLS-terminating proxy, as in production: the proof's requests carry
        # X-Forwarded-Proto: https (see proof.client), so HSTS and secure cookies show.
        # FORCE_HTTPS stays off only because nothing speaks TLS on loopback.
        "TRUSTED_PROXIES": "1",
        "PYTHONUNBUFFERED": "1",
    })
    if redis_is_broker:
        # A killed worker's messages go to another after this long (production: 60 s, found
        # only during maintenance, 1 command in 1,000): seconds here, or the run waits minutes.
        env.update({"BROKER_HEARTBEAT_TIMEOUT_MS": "5000", "BROKER_MAINTENANCE_CHANCE": "200000"})
    return env


def _through(env: dict[str, str], proxy: DatabaseProxy) -> dict[str, str]:
    url = env["DATABASE_URL"].replace("@127.0.0.1:5432/", f"@127.0.0.1:{proxy.port}/")
    return {**env, "DATABASE_URL": url}


@contextmanager
def platform(workdir: Path, *, use_rabbitmq: bool) -> Iterator[Platform]:
    """Everything started, in dependency order; stopped in reverse however the block ends."""
    with ExitStack() as stack:
        rabbitmq = PrivateRabbitMQ(workdir) if use_rabbitmq else None
        redis_server = PrivateRedis(workdir, durable=rabbitmq is None)
        redis_server.start()
        stack.callback(redis_server.stop)
        if rabbitmq is not None:
            _progress(f"starting a private RabbitMQ node on port {rabbitmq.port}")
            rabbitmq.start()
            stack.callback(rabbitmq.stop)
        journal = workdir / "mail.jsonl"
        sink = stack.enter_context(smtp_sink(journal))
        proxy = DatabaseProxy()
        stack.callback(proxy.close)
        broker_url = rabbitmq.url if rabbitmq is not None else redis_server.url
        direct = _environment(workdir / "instance", redis_server.url, broker_url, sink.url,
                              redis_is_broker=rabbitmq is None)
        _progress(f"resetting database {PROOF.database_name} (role {PROOF.app_role}), migrating")
        backends.reset_database(PROOF)
        backends.migrate(direct)
        env = _through(direct, proxy)
        worker = Supervised("worker", [str(BIN / "dramatiq"), "workers.boot", "--processes",
                                       str(WORKER_PROCESSES), "--threads", str(WORKER_THREADS)],
                            env, workdir / "worker.log")
        stack.callback(worker.stop)
        scheduler = Supervised("scheduler", [sys.executable, "-m", "scheduler"], env,
                               workdir / "scheduler.log")
        stack.callback(scheduler.stop)
        _progress(f"starting gunicorn ({GUNICORN.workers} x {GUNICORN.worker_class}, "
                  f"{GUNICORN.threads} threads), dramatiq ({WORKER_PROCESSES} x "
                  f"{WORKER_THREADS}), the scheduler")
        url = stack.enter_context(running(
            ServerSpec("web", "wsgi:app", env, ready_path="/api/health/live"), GUNICORN,
            workdir))
        stack.callback(proxy.restore)  # nothing may stay stuck while the processes stop
        yield Platform(url, env, direct, workdir, redis_server, rabbitmq, proxy, sink, journal,
                       worker, scheduler)


def _progress(message: str) -> None:
    print(f"proof: {message}", file=sys.stderr, flush=True)
