"""`make run` keeps the platform up: supervisord starts again whatever dies, and only that.

Dramatiq stops all its worker processes when one dies (by design); under honcho that stopped web
and scheduler too. These tests start `make run` itself (deploy/supervisor/), SIGKILL a process
as the OOM killer would, and watch what a user and an operator would see.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from http.cookiejar import CookieJar
from pathlib import Path

import pytest

from core.adapters.cache import RedisCache
from tests.conftest import IN_CI, TEST_DATABASE_URL, free_port
from tests.support.flows import link_in, signup_therapist
from tests.support.processes import (
    BIN,
    Process,
    children,
    command_line,
    pids_with_env,
    platform_env,
    running,
    wait_until,
)
from workers.middleware import HEARTBEAT_GROUP

pytestmark = pytest.mark.integration

VENV = BIN.parent
MARKER = "MAKE_RUN_TEST_ID"  # in the environment of every process one run starts
WORKER_PROCESSES = 2
WEB_PROCESSES = 2


class MakeRun:
    """`make run` in a session of its own, as a developer starts it."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.id = uuid.uuid4().hex
        self.port = int(env["PORT"])
        # -o: the virtualenv running these tests is installed already; do not reinstall it.
        self.make = Process(["make", "-o", f"{VENV}/.runtime", f"VENV={VENV}", "run"],
                            {**env, MARKER: self.id}, log_path)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def output(self) -> str:
        return self.make.output()

    def supervisord(self) -> int:
        [pid] = children(self.make.pid)  # the recipe's shell exec'ed supervisord
        return pid

    def program(self, command: str) -> int | None:
        """The pid of the supervised program whose command line contains `command`."""
        found = [pid for pid in children(self.supervisord()) if command in command_line(pid)]
        assert len(found) <= 1, found
        return found[0] if found else None

    def processes(self) -> list[int]:
        return pids_with_env(MARKER, self.id)

    def terminate(self) -> None:
        """SIGTERM to make, as a process manager stops it: make hands it to supervisord."""
        self.make.popen.send_signal(signal.SIGTERM)

    def kill_everything(self) -> None:
        deadline = time.monotonic() + 15
        while (left := self.processes()) and time.monotonic() < deadline:
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        if self.make.alive():
            self.make.popen.wait(timeout=10)
        self.make.stop()  # closes the log


class LivenessProbe(threading.Thread):
    """GET /api/health/live every 50 ms until stopped; keeps every failure."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.answered = 0
        self.failures: list[str] = []
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    assert response.status == 200
                self.answered += 1
            except Exception as error:
                self.failures.append(f"{time.strftime('%X')} {error!r}")
            self._done.wait(0.05)

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=10)


class HttpResponse:
    def __init__(self, status: int, body: bytes) -> None:
        self.status_code = status
        self._body = body

    def get_data(self, as_text: bool = False) -> str | bytes:
        return self._body.decode() if as_text else self._body


class HttpClient:
    """As much of Flask's test client as tests.support.flows uses, over real HTTP, with cookies."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))

    def get(self, path: str) -> HttpResponse:
        return self._open(urllib.request.Request(self.base_url + path))

    def post(self, path: str, data: dict[str, str]) -> HttpResponse:
        body = urllib.parse.urlencode(data).encode()
        return self._open(urllib.request.Request(self.base_url + path, data=body))

    def _open(self, request: urllib.request.Request) -> HttpResponse:
        try:
            with self.opener.open(request, timeout=10) as response:
                return HttpResponse(response.status, response.read())
        except urllib.error.HTTPError as error:
            return HttpResponse(error.code, error.read())


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def runs():
    """Every `make run` a test starts; each process they started is ended, whatever happens."""
    started: list[MakeRun] = []
    yield started
    for run in started:
        run.kill_everything()
        print(run.output()[-20000:])  # shown when the test failed


def start(runs: list[MakeRun], env: dict[str, str], log_path: Path) -> MakeRun:
    run = MakeRun(env, log_path)
    runs.append(run)
    wait_until(lambda: answers(run.url("/api/health/live")), 60, "web answers")
    return run


@pytest.fixture
def make_run(runs, db, database_url, redis_url, smtp_server, tmp_path):
    """Starts `make run` with REDIS_URL set: the Procfile processes."""
    if not TEST_DATABASE_URL:
        if IN_CI:
            pytest.fail("CI must set TEST_DATABASE_URL")
        pytest.skip("needs TEST_DATABASE_URL (CI always sets it)")
    env = platform_env(DATABASE_URL=database_url, REDIS_URL=redis_url, SMTP_URL=smtp_server.url,
                       INSTANCE_PATH=str(tmp_path), PORT=str(free_port()),
                       WEB_CONCURRENCY=str(WEB_PROCESSES), WORKER_PROCESSES=str(WORKER_PROCESSES),
                       WORKER_THREADS="2")
    return lambda: start(runs, env, tmp_path / "make-run.log")


def worker_processes(run: MakeRun) -> tuple[int, list[int]] | None:
    """(dramatiq's main process, its worker processes) once all of them are up."""
    main = run.program("dramatiq workers.boot")
    if main is None or len(workers := children(main)) != WORKER_PROCESSES:
        return None
    return main, workers


def test_a_killed_worker_process_is_restarted_and_nothing_else_is(make_run, redis_url,
                                                                   smtp_server) -> None:
    run = make_run()
    heartbeats = RedisCache(redis_url)
    wait_until(lambda: heartbeats.alive(HEARTBEAT_GROUP), 30, "a worker heartbeat")
    main, workers = wait_until(lambda: worker_processes(run), 30, "dramatiq worker processes")
    web, scheduler = run.program("gunicorn wsgi:app"), run.program("-m scheduler")
    assert web and scheduler, run.output()
    beating_before = set(heartbeats.alive(HEARTBEAT_GROUP))

    probe = LivenessProbe(run.url("/api/health/live"))
    probe.start()
    try:
        os.kill(workers[0], signal.SIGKILL)
        # Dramatiq stops the other worker process and exits; supervisord starts it again.
        client = HttpClient(run.url(""))
        assert signup_therapist(client, email="during@example.com").status_code == 200
        _, new_workers = wait_until(
            lambda: (found := worker_processes(run)) and found[0] != main and found,
            60, "a new dramatiq worker")
        assert not set(new_workers) & set(workers)
        assert not any(running(pid) for pid in workers)
        wait_until(lambda: set(heartbeats.alive(HEARTBEAT_GROUP)) - beating_before, 30,
                   "a heartbeat from a new worker process")

        # Side effects still run end to end: for the sign-up made while the worker restarted, and
        # for one that only the new worker can have handled.
        assert signup_therapist(client, email="after@example.com").status_code == 200
        smtp_server.wait_for(2, timeout=60)
    finally:
        probe.stop()
    for address in ("during@example.com", "after@example.com"):
        [message] = smtp_server.to(address)
        assert message["Subject"] == "Confirm your e-mail address"
        assert link_in(message, "/verify-email/")
    assert not probe.failures, probe.failures[:5]
    assert probe.answered >= 20
    assert (run.program("gunicorn wsgi:app"), run.program("-m scheduler")) == (web, scheduler)

    # SIGTERM (or Ctrl+C) stops everything it started, and make with it.
    run.terminate()
    wait_until(lambda: not run.make.alive(), 60, "make run to stop")
    wait_until(lambda: not run.processes(), 10, "every process of make run to stop")
    assert "Traceback" not in run.output()


def test_a_killed_web_process_is_restarted(make_run) -> None:
    run = make_run()
    web = run.program("gunicorn wsgi:app")
    assert web, run.output()
    web_workers = wait_until(lambda: len(found := children(web)) == WEB_PROCESSES and found, 30,
                             "gunicorn's worker processes")
    others = wait_until(lambda: all(found := (run.program("dramatiq workers.boot"),
                                              run.program("-m scheduler"))) and found,
                        30, "worker and scheduler")

    os.kill(web, signal.SIGKILL)
    new_web = wait_until(lambda: (pid := run.program("gunicorn wsgi:app")) != web and pid,
                         30, "a new gunicorn")
    # The old gunicorn workers notice their parent is gone and leave; the new ones serve.
    wait_until(lambda: not any(running(pid) for pid in web_workers), 30,
               "the old gunicorn workers to exit")
    wait_until(lambda: answers(run.url("/api/health/live")), 30, "web answers again")
    assert children(new_web)
    assert (run.program("dramatiq workers.boot"), run.program("-m scheduler")) == others


def test_embedded_make_run_restarts_its_process_and_stops_on_ctrl_c(runs, tmp_path) -> None:
    env = platform_env(INSTANCE_PATH=str(tmp_path), PORT=str(free_port()))
    run = start(runs, env, tmp_path / "make-run.log")
    platform = run.program("-m assembly")
    assert platform, run.output()

    os.kill(platform, signal.SIGKILL)
    wait_until(lambda: run.program("-m assembly") not in (None, platform), 30, "a new platform")
    wait_until(lambda: answers(run.url("/api/health/live")), 30, "web answers again")

    os.killpg(run.make.pid, signal.SIGINT)  # Ctrl+C: the terminal signals make's process group
    wait_until(lambda: not run.make.alive(), 60, "make run to stop")
    wait_until(lambda: not run.processes(), 10, "every process of make run to stop")
    assert "Traceback" not in run.output()


def test_worker_processes_stop_when_their_main_process_is_killed(make_run) -> None:
    run = make_run()
    main, workers = wait_until(lambda: worker_processes(run), 30, "dramatiq worker processes")

    os.kill(main, signal.SIGKILL)  # dramatiq cannot stop its worker processes now
    wait_until(lambda: (found := worker_processes(run)) and found[0] != main, 60,
               "a new dramatiq worker")
    # Orphans would go on consuming beside the new worker, and outlive make run.
    wait_until(lambda: not any(running(pid) for pid in workers), 30,
               "the old worker processes to stop")
