"""The services the proof may break: a Redis, a RabbitMQ node and a path to PostgreSQL of its own.

Each is private to the run (its own process, its own free port), so killing or silencing it
never touches the machine's shared Redis, RabbitMQ or PostgreSQL.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import redis

from bench.ports import restartable_port
from bench.servers import die_with_parent, tail

START_TIMEOUT = 60.0
RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")  # not the wrapper that su's


# The kernel's parent-death signal (die_with_parent) follows the *thread* that started a process:
# a Redis restarted from a fault's short-lived thread would be stopped when that thread ends.
# Every process is therefore started from this one thread, which lives as long as the run.
_LAUNCHER = ThreadPoolExecutor(1, thread_name_prefix="launcher")


def spawn(command: list[str], *, log_path: Path, env: dict[str, str] | None = None,
          cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """Start `command` in its own session, logging to `log_path`; it dies with the proof."""
    def start() -> subprocess.Popen[bytes]:
        with log_path.open("ab") as log:
            return subprocess.Popen(command, cwd=cwd, env=env, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    preexec_fn=die_with_parent)

    return _LAUNCHER.submit(start).result()


class ServiceError(Exception):
    """A private service did not start or stop; the message carries the tail of its log."""


def wait_for(condition: Any, timeout: float, what: str, interval: float = 0.1) -> float:
    """Poll `condition` until it is true; return the seconds waited, or raise ServiceError."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(interval)
    raise ServiceError(f"{what} did not happen within {timeout:.0f} s")


def accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class PrivateRedis:
    """redis-server on a free port. `durable` (when it is also the broker) keeps an append-only
    file synced on every write, so a killed and restarted Redis still holds its queues."""

    def __init__(self, workdir: Path, *, durable: bool) -> None:
        self.port = restartable_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.durable = durable
        self.dir = workdir / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "redis.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServiceError("redis-server is not installed (apt-get install redis-server)")
        persistence = (["--appendonly", "yes", "--appendfsync", "always"] if self.durable
                       else ["--appendonly", "no"])
        self._process = spawn([binary, "--port", str(self.port), "--bind", "127.0.0.1",
                               "--save", "", "--dir", str(self.dir), *persistence],
                              log_path=self.log_path)
        try:
            wait_for(self._answers, 10, f"redis on port {self.port} answering")
        except ServiceError:
            raise ServiceError(f"redis did not start:\n{tail(self.log_path)}") from None

    def _answers(self) -> bool:
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final save, as when a host or container dies."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=10)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


class PrivateRabbitMQ:
    """A RabbitMQ node of the run's own (its own name, ports, data and cookie), started from the
    server script itself rather than the system's wrapper, so it runs as us and stops with us.
    The machine's shared node on 5672 is never touched."""

    def __init__(self, workdir: Path) -> None:
        self.port = restartable_port()
        self.dist_port = restartable_port()
        self.nodename = f"proof{os.getpid()}@localhost"
        self.dir = workdir / "rabbitmq"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "rabbitmq.log"
        self._process: subprocess.Popen[bytes] | None = None
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\nloopback_users = none\n")
        (self.dir / "enabled_plugins").write_text("[].\n")
        (self.dir / "rabbitmq-env.conf").write_text("")

    @staticmethod
    def available() -> bool:
        return RABBITMQ_SERVER.exists()

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def _env(self) -> dict[str, str]:
        base = {name: os.environ[name] for name in ("PATH", "LANG", "LC_ALL") if name in
                os.environ}
        return {
            **base,
            "HOME": str(self.dir),  # its own Erlang cookie
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.dir / "advanced.config"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def start(self) -> float:
        """Start the node (keeping its data from a previous start); seconds until it accepted
        AMQP connections. Its distribution port is any free one: if a connection took it while
        the node was down, the node starts on another."""
        for attempt in range(3):
            try:
                return self._start_once()
            except ServiceError as error:
                if "dist_port_already_used" not in str(error) or attempt == 2:
                    raise
                self.dist_port = restartable_port()
        raise AssertionError("unreachable")

    def _start_once(self) -> float:
        self._process = spawn([str(RABBITMQ_SERVER)], log_path=self.log_path, env=self._env(),
                              cwd=self.dir)
        try:
            return wait_for(self._ready, START_TIMEOUT, f"RabbitMQ on port {self.port}",
                            interval=0.25)
        except ServiceError:
            self.stop()
            raise ServiceError(f"RabbitMQ did not start:\n{tail(self.log_path)}") from None

    def _ready(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            raise ServiceError(f"RabbitMQ exited while starting:\n{tail(self.log_path)}")
        if not accepts_connections(self.port):
            return False
        import pika

        try:
            pika.BlockingConnection(pika.URLParameters(self.url + "?connection_attempts=1"
                                                       "&socket_timeout=2")).close()
            return True
        except pika.exceptions.AMQPError:
            return False

    def stop(self) -> None:
        """SIGTERM to the node's own process group (the script and the Erlang VM): a clean
        shutdown, as `rabbitmqctl stop` or a service manager's restart does."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
            wait_for(lambda: not accepts_connections(self.port), 30, "RabbitMQ closing")
        except (subprocess.TimeoutExpired, ServiceError):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


# -- a path to PostgreSQL that can go silent ------------------------------------------------------
def _serve_proxy(host: str, port: int, control: Connection) -> None:
    from tests.support.tcp_proxy import TcpProxy

    die_with_parent()
    proxy = TcpProxy(host, port)
    proxy.restore()
    control.send(proxy.port)
    while True:
        command = control.recv()
        if command == "blackhole":
            proxy.blackhole()
        elif command == "restore":
            proxy.restore()
        elif command == "close":
            proxy.close()
            control.send("closed")
            return
        control.send(command)


class DatabaseProxy:
    """tests.support.tcp_proxy in a process of its own, between every platform process and
    PostgreSQL: forwarding it costs the proof's own threads no interpreter time, and
    `blackhole()` silences the database for all of them at once."""

    def __init__(self, host: str = "127.0.0.1", port: int = 5432) -> None:
        spawn = multiprocessing.get_context("spawn")
        self._control, remote = spawn.Pipe()
        self._process = spawn.Process(target=_serve_proxy, args=(host, port, remote),
                                      name="db-proxy", daemon=True)
        self._process.start()
        if not self._control.poll(START_TIMEOUT):
            self._process.kill()
            raise ServiceError("the database proxy did not start")
        self.port: int = self._control.recv()

    def _command(self, command: str) -> None:
        self._control.send(command)
        if not self._control.poll(10):
            raise ServiceError(f"the database proxy did not answer {command!r}")
        self._control.recv()

    def blackhole(self) -> None:
        self._command("blackhole")

    def restore(self) -> None:
        self._command("restore")

    def close(self) -> None:
        if self._process.is_alive():
            with contextlib.suppress(ServiceError, OSError):
                self._command("close")
            self._process.join(5)
        if self._process.is_alive():
            self._process.kill()
