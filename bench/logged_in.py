"""A person's requests, under wrk: logging in, the warm therapist dashboard, onboarding auto-save.

Each wrk thread plays one person. What it sends with (session cookie, CSRF token, onboarding
version) is generated into the Lua script before every wrk run and handed to the thread in
`setup()` (bench/scripts/sessions.lua); every response is checked against what that person
should get — a 302 to /dashboard, a 200 — because wrk alone would count a redirect to the login
page as a success. The people are made once per run by `bench.accounts` and log in through the
served app, like a browser (`bench.browser`). Two figures come from elsewhere: the dashboard's
SQL statements, counted in the bench process's own app, and auto-saves at a person's pace, sent
from Python threads (see `_paced` for why not wrk).

The platform's modules are imported only when these entries run (see `bench.pipeline`).
"""

from __future__ import annotations

import functools
import http.client
import json
import logging
import random
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from statistics import quantiles
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

from bench import accounts, inprocess, interference
from bench.browser import Browser
from bench.counts import counting
from bench.http import BASELINE, SCRIPTS, LuaValue, WrkResult, lua_literal, run_wrk
from bench.inprocess import EnvKey, env_key
from bench.measure import Context, MeasurementError, Sample, Target

if TYPE_CHECKING:
    from flask.testing import FlaskClient

ThreadValues = Mapping[str, LuaValue]

# logging in: one argon2id verification keeps ~1.6 cores busy for ~0.2 s, so 4 connections
# saturate 2 cores. The run's 16 would answer in batches of 16 every ~3.5 s, which a 10 s run
# counts as 2 or 3 batches (+-30 %), and spend more on 16 x 64 MiB of memory than on hashing.
LOGIN_CONNECTIONS = 4
LOGIN_TIMEOUT = 30  # seconds: a queue of log-ins outlasts wrk's default 2 s
# the median of a short run at one connection is the time one log-in takes
ALONE_SECONDS = 5
# auto-save: what the issue asks for, each session on its own wrk thread and connection
AUTOSAVE_SESSIONS = 50
AUTOSAVE_P99_TARGET_MS = 50
# ... and at a person's pace: the page saves 2 s after the last keystroke, so each session pauses
# 1-3 s (at random, so that the sessions drift apart) before each save, ~25 saves/s in all.
AUTOSAVE_PAUSE_S = (1.0, 3.0)
AUTOSAVE_PATH = "/api/onboarding/progress"
_VERSION = re.compile(rb'"version"\s*:\s*(\d+)')
PHONE = "+44 20 7946 0958"
# the dashboard, counted in-process: GETs that fill the session and onboarding-gate caches first
WARMING_GETS = 2
# The pool's ping of a connection that sat idle. The row-level security settings (one statement
# per transaction) go to the driver directly since b98fcfe, so SQLAlchemy's events, which these
# counts read, no longer see them; "SELECT set_config" stays for runs of older commits.
PLUMBING = ("SELECT set_config", "SELECT 1")


def wrk_script(ctx: Context, name: str, script: str, threads: Sequence[ThreadValues], *,
            status: int, location: str | None = None) -> Path:
    """The Lua file for one wrk run: these threads' values, what every answer must be, then
    sessions.lua and the entry's own script."""
    expect: dict[str, LuaValue] = {"status": status}
    if location is not None:
        expect["location"] = location
    lines = [f"bench_threads = {lua_literal(threads)}", f"bench_expect = {lua_literal(expect)}",
             (SCRIPTS / "sessions.lua").read_text(), (SCRIPTS / script).read_text()]
    path = ctx.workdir / f"{name}.lua"
    path.write_text("\n".join(lines) + "\n")
    return path


def checked_wrk(ctx: Context, path: str, script: Path, seconds: int, *,
                threads: int | None = None, connections: int | None = None,
                timeout: int | None = None, target: Target = "app") -> WrkResult:
    result = run_wrk(ctx.urls[target] + path, ctx, seconds=seconds, headers={}, script=script,
                     threads=threads, connections=connections, timeout=timeout)
    if result.unexpected is None:
        raise MeasurementError(f"{script.name} did not report the responses it checked")
    return result


def _ms(value: float | None) -> float | str:
    return "-" if value is None else round(value, 2)


def _with_errors(sample: Sample, errors: Mapping[str, int], prefix: str) -> Sample:
    """`sample` plus the errors of another run of the same round, named apart."""
    detail = {**sample.error_detail, **{f"{prefix}{kind}": n for kind, n in errors.items()}}
    return replace(sample, errors=sample.errors + sum(errors.values()), error_detail=detail)


# -- login ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Login:
    """POST /login with the right password: argon2id (64 MiB, t=3, p=4), a session row and a
    USER_LOGIN event each, at 4 connections (see LOGIN_CONNECTIONS). Every wrk thread posts
    with its own anonymous cookie and CSRF token; an answer other than a 302 to /dashboard is an
    error. `ms_per_login` is measured, not derived: the median latency of a separate short run
    at one connection."""

    name: str = "login"
    unit: str = "req/s"
    baseline: str = BASELINE
    needs_servers: bool = True

    def warm_up(self, ctx: Context) -> None:
        self._therapist(ctx)
        if ctx.options.warmup > 0:
            self._run(ctx, ctx.options.warmup, LOGIN_CONNECTIONS)
        self._clean_up(ctx)

    def measure(self, ctx: Context) -> Sample:
        alone_seconds = min(ctx.options.duration, ALONE_SECONDS)
        try:
            alone = self._run(ctx, alone_seconds, 1)
            loaded = self._run(ctx, ctx.options.duration, LOGIN_CONNECTIONS)
        finally:
            self._clean_up(ctx)
        sample = _with_errors(loaded.sample(), alone.sample().error_detail, prefix="alone_")
        return replace(sample, extra={
            "connections": LOGIN_CONNECTIONS,
            "ms_per_login": _ms(alone.percentiles_ms.get(50.0)),
            "ms_per_login_from": f"p50 of a separate {alone_seconds} s run at 1 connection",
            "logins_per_s_at_1_connection": round(alone.requests_per_second, 1)})

    def _therapist(self, ctx: Context) -> accounts.Person:
        return accounts.practice(env_key(ctx), "Bench Practice", "bench").therapist

    def _run(self, ctx: Context, seconds: int, connections: int) -> WrkResult:
        email = self._therapist(ctx).email
        threads = min(ctx.options.wrk_threads, connections)
        values: list[ThreadValues] = []
        for _ in range(threads):
            browser = Browser(ctx.urls["app"])
            form = {"email": email, "password": accounts.password(),
                    "csrf_token": browser.csrf_token("/login")}
            values.append({"method": "POST", "path": "/login", "body": urlencode(form),
                           "headers": {"Cookie": browser.cookie_header,
                                       "Content-Type": "application/x-www-form-urlencoded"}})
        script = wrk_script(ctx, self.name, "same_request.lua", values, status=302,
                         location="/dashboard")
        result = checked_wrk(ctx, "/login", script, seconds, threads=threads,
                             connections=connections, timeout=LOGIN_TIMEOUT)
        # wrk leaves up to one log-in per connection in flight: let the server finish them
        # before anything else is measured.
        if not interference.wait_until_idle():
            print("warning: the machine stayed busy after the login run; the next figures may "
                  "be low", file=sys.stderr)
        return result

    def _clean_up(self, ctx: Context) -> None:
        accounts.forget_logins(env_key(ctx), self._therapist(ctx))


# -- the therapist's dashboard -------------------------------------------------------------------
@dataclass(frozen=True)
class Dashboard:
    """GET /therapist, warm, as a therapist whose onboarding is complete: one session per wrk
    thread, its connections share it; anything but a 200 is an error (a 302 means the session
    is not valid). The SQL statements of one warm request are counted in-process, classified as
    tests/web/test_query_budget.py does."""

    name: str = "dashboard"
    unit: str = "req/s"
    baseline: str = BASELINE
    needs_servers: bool = True

    def warm_up(self, ctx: Context) -> None:
        self._sessions(ctx)
        _logged_in_client(env_key(ctx), self._therapist(ctx).email)
        if ctx.options.warmup > 0:
            self._run(ctx, ctx.options.warmup)

    def measure(self, ctx: Context) -> Sample:
        sample = self._run(ctx, ctx.options.duration).sample()
        counted = _dashboard_statements(env_key(ctx), self._therapist(ctx).email)
        return replace(sample, extra={"sessions": len(self._sessions(ctx)), **counted})

    def _therapist(self, ctx: Context) -> accounts.Person:
        return accounts.practice(env_key(ctx), "Bench Dashboard", "bench-dashboard").therapist

    def _sessions(self, ctx: Context) -> tuple[str, ...]:
        return _dashboard_cookies(env_key(ctx), ctx.urls["app"], ctx.options.wrk_threads,
                                  self._therapist(ctx).email)

    def _run(self, ctx: Context, seconds: int) -> WrkResult:
        values: list[ThreadValues] = [
            {"method": "GET", "path": "/therapist", "headers": {"Cookie": cookie}}
            for cookie in self._sessions(ctx)]
        script = wrk_script(ctx, self.name, "same_request.lua", values, status=200)
        return checked_wrk(ctx, "/therapist", script, seconds)


@functools.cache
def _dashboard_cookies(env: EnvKey, base_url: str, count: int, email: str) -> tuple[str, ...]:
    cookies = []
    for _ in range(count):
        browser = Browser(base_url)
        browser.log_in(email, accounts.password())
        reply = browser.request("GET", "/therapist")
        if reply.status != 200:
            raise MeasurementError(f"GET /therapist after logging in answered {reply.status} "
                                   f"{reply.location}")
        cookies.append(browser.cookie_header)
    return tuple(cookies)


@contextmanager
def request_log_quiet() -> Iterator[None]:
    """The in-process app logs each request like the servers do; not on the bench's stderr."""
    log = logging.getLogger("web.request")
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(level)


@functools.cache
def _logged_in_client(env: EnvKey, email: str) -> FlaskClient:
    """The run's in-process app (same settings as the servers), logged in with the login form."""
    client = inprocess.app(env).test_client()
    with request_log_quiet():
        page = client.get("/login").get_data(as_text=True)
        token = re.search(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"', page)
        if token is None:
            raise MeasurementError("no CSRF token on the in-process app's login page")
        response = client.post("/login", data={"email": email, "password": accounts.password(),
                                               "csrf_token": token.group(1)})
    if response.status_code != 302:
        raise MeasurementError(f"in-process log-in answered {response.status_code}")
    return client


def _dashboard_statements(env: EnvKey, email: str) -> dict[str, float | str]:
    """The statements one warm GET /therapist sends to the database, by kind."""
    from tests.web.test_query_budget import WHO_IS_ASKING

    client = _logged_in_client(env, email)
    with request_log_quiet():
        statuses = [client.get("/therapist").status_code for _ in range(WARMING_GETS)]
        with counting(client) as counted:
            statuses.append(client.get("/therapist").status_code)
    if any(status != 200 for status in statuses):
        raise MeasurementError(f"in-process GET /therapist answered {statuses}")
    seen = counted.statements
    identity = [s for s in seen if WHO_IS_ASKING.search(s)]
    plumbing = [s for s in seen if s.startswith(PLUMBING)]
    if identity:
        shown = "\n  ".join(" ".join(s.split())[:160] for s in identity)
        print(f"warning: a warm GET /therapist still asks who is asking:\n  {shown}",
              file=sys.stderr)
    return {"sql_queries_per_request": len(seen),
            "identity_queries_per_request": len(identity),
            "plumbing_queries": len(plumbing),
            "content_queries": len(seen) - len(identity) - len(plumbing),
            **counted.figures()}


def _autosave_counts(env: EnvKey) -> dict[str, float | str]:
    """What one warm auto-save sends to the backends, as the first of the people saves it."""
    person = accounts.onboarding_clients(env, AUTOSAVE_SESSIONS)[0]
    client = _logged_in_client(env, person.email)
    with request_log_quiet():
        token = client.get("/api/csrf-token").get_json()["csrf_token"]
        version = client.get(AUTOSAVE_PATH).get_json()["version"]

        def save() -> int:
            nonlocal version
            response = client.put(AUTOSAVE_PATH, headers={"X-CSRFToken": token}, json={
                "stage": "PERSONAL_INFO", "version": version,
                "data": {"full_name": f"Bench counted {version}", "phone": PHONE}})
            version = (response.get_json() or {}).get("version", version)
            return response.status_code

        statuses = [save() for _ in range(WARMING_GETS)]
        with counting(client) as counted:
            statuses.append(save())
    if any(status != 200 for status in statuses):
        raise MeasurementError(f"in-process PUT {AUTOSAVE_PATH} answered {statuses}")
    return counted.figures()


# -- onboarding auto-save ------------------------------------------------------------------------
@dataclass(frozen=True)
class Autosave:
    """PUT /api/onboarding/progress at 50 sessions, one wrk thread and connection each (-t50
    -c50), each with its own version: it sends the version of its last answer, so a 409 (stale
    version) or anything but a 200 is an error.

    The table's figures are wrk's: every session saves again as soon as it has its answer, so
    latency there is mostly the queue of 50 sessions for 16 server threads (mean latency =
    50 / req/s). Two more runs per round put that in context: bare Flask at the same -t50 -c50
    (a like-for-like ratio beside the table's, whose bare Flask ran at the run's threads and
    connections), and the same 50 sessions at a person's pace (`paced_*`, see `_paced`)."""

    name: str = "autosave"
    unit: str = "req/s"
    baseline: str = BASELINE
    needs_servers: bool = True

    def warm_up(self, ctx: Context) -> None:
        _autosave_browsers(env_key(ctx), ctx.urls["app"])
        if ctx.options.warmup > 0:
            self._run(ctx, ctx.options.warmup)

    def measure(self, ctx: Context) -> Sample:
        seconds = ctx.options.duration
        result = self._run(ctx, seconds)
        bare = run_wrk(ctx.urls["bare"] + "/", ctx, seconds=seconds, headers={}, script=None,
                       threads=AUTOSAVE_SESSIONS, connections=AUTOSAVE_SESSIONS)
        paced = _paced(ctx.urls["app"], _autosave_state(env_key(ctx), ctx.urls["app"]), seconds)
        sample = _with_errors(result.sample(), bare.sample().error_detail, prefix="bare_")
        sample = _with_errors(sample, paced.unexpected, prefix="paced_")
        extra: dict[str, float | str] = {
            **_autosave_counts(env_key(ctx)),
            "sessions": AUTOSAVE_SESSIONS, "wrk": f"-t{AUTOSAVE_SESSIONS} -c{AUTOSAVE_SESSIONS}",
            "p99_target_ms": AUTOSAVE_P99_TARGET_MS,
            "bare_flask_same_wrk_req_s": round(bare.requests_per_second, 1),
            "bare_flask_same_wrk_p99_ms": _ms(bare.percentiles_ms.get(99.0)),
            "ratio_to_bare_same_wrk": round(result.requests_per_second
                                            / bare.requests_per_second, 3),
            "paced": "each session pauses {:g}-{:g} s before each save".format(*AUTOSAVE_PAUSE_S),
            "paced_req_s": round(paced.saves_per_second, 1),
            "paced_p50_ms": _ms(paced.percentile(50)),
            "paced_p99_ms": _ms(paced.percentile(99)),
        }
        return replace(sample, extra=extra)

    def _run(self, ctx: Context, seconds: int) -> WrkResult:
        values: list[ThreadValues] = [
            {"path": AUTOSAVE_PATH, "phone": PHONE, "version": version,
             "headers": autosave_headers(browser, token)}
            for browser, token, version in _autosave_state(env_key(ctx), ctx.urls["app"])]
        script = wrk_script(ctx, self.name, "autosave.lua", values, status=200)
        return checked_wrk(ctx, AUTOSAVE_PATH, script, seconds, threads=AUTOSAVE_SESSIONS,
                           connections=AUTOSAVE_SESSIONS)


def autosave_headers(browser: Browser, token: str) -> dict[str, str]:
    return {"Cookie": browser.cookie_header, "X-CSRFToken": token,
            "Content-Type": "application/json", "Accept": "application/json"}


@functools.cache
def _autosave_browsers(env: EnvKey, base_url: str) -> tuple[tuple[Browser, str], ...]:
    """One logged-in browser per person, with a CSRF token for its JSON requests."""
    logged_in = []
    for person in accounts.onboarding_clients(env, AUTOSAVE_SESSIONS):
        browser = Browser(base_url)
        browser.log_in(person.email, accounts.password())
        logged_in.append((browser, browser.api_csrf_token()))
    return tuple(logged_in)


def _autosave_state(env: EnvKey, base_url: str) -> list[tuple[Browser, str, int]]:
    """Each browser with its token and its onboarding's current version (it moves on with every
    save, so it is read again before every wrk run)."""
    state = []
    for browser, token in _autosave_browsers(env, base_url):
        snapshot = browser.request("GET", AUTOSAVE_PATH).json()
        version, stage = snapshot.get("version"), snapshot.get("stage")
        if not isinstance(version, int) or stage != "PERSONAL_INFO":
            raise MeasurementError(f"onboarding progress is {snapshot}, not a version on the "
                                   "PERSONAL_INFO stage")
        state.append((browser, token, version))
    return state


@dataclass(frozen=True)
class Paced:
    seconds: float
    latencies_ms: list[float]
    unexpected: dict[str, int]

    @property
    def saves_per_second(self) -> float:
        return len(self.latencies_ms) / self.seconds

    def percentile(self, percent: int) -> float | None:
        if len(self.latencies_ms) < 2:
            return self.latencies_ms[0] if self.latencies_ms else None
        return quantiles(self.latencies_ms, n=100, method="inclusive")[percent - 1]


def _paced(base_url: str, state: Sequence[tuple[Browser, str, int]], seconds: int) -> Paced:
    """Every person pauses 1-3 s, saves, pauses again ..., for `seconds`: a Python thread each,
    on a keep-alive connection opened by its first save, as a browser's would be.

    Not wrk: wrk opens every connection at its start, and an accepted connection that sends
    nothing yet holds one of gunicorn's gthread threads for up to 5 s (it waits for the first
    bytes before handing the socket to its poller), so 50 connections idling through their
    first pause would leave the first saves queueing for a thread for up to a second."""
    parts = urlsplit(base_url)
    started = time.monotonic()
    deadline = started + seconds
    latencies: list[float] = []
    unexpected: Counter[str] = Counter()
    lock = threading.Lock()

    def person(number: int, browser: Browser, token: str, version: int) -> None:
        pace = random.Random(number)
        connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port,
                                                timeout=30)
        headers = autosave_headers(browser, token)
        try:
            while time.monotonic() + (pause := pace.uniform(*AUTOSAVE_PAUSE_S)) < deadline:
                time.sleep(pause)
                body = json.dumps({"stage": "PERSONAL_INFO", "version": version, "data": {
                    "full_name": f"Bench {number} paced", "phone": PHONE}})
                start = time.perf_counter()
                connection.request("PUT", AUTOSAVE_PATH, body=body, headers=headers)
                response = connection.getresponse()
                answer = response.read()
                elapsed_ms = (time.perf_counter() - start) * 1000
                found = _VERSION.search(answer)  # a 409 carries the current version too
                version = int(found.group(1)) if found else version
                with lock:
                    latencies.append(elapsed_ms)
                    if response.status != 200:
                        unexpected[f"status_{response.status}"] += 1
        except (OSError, http.client.HTTPException) as error:
            with lock:
                unexpected[type(error).__name__] += 1
        finally:
            connection.close()

    people = [threading.Thread(target=person, args=(number, *values), daemon=True)
              for number, values in enumerate(state)]
    for thread in people:
        thread.start()
    for thread in people:
        thread.join()
    return Paced(time.monotonic() - started, latencies, dict(unexpected))
