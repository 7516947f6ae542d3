"""load: many clients at once, limits raised, each page its own wrk run (all started together),
so that every page has its own p99: the public pages, logging in, both dashboards and auto-save.

Every answer is checked by bench/scripts/sessions.lua (a 200, or a 302 to /dashboard for a
log-in): wrk alone would count a redirect to the login page as a success. wrk's timeout is
raised to 30 s: under this load a slow answer is a figure (p99), and only no answer at all is
an error.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from bench.browser import Browser
from bench.http import WrkResult
from bench.logged_in import AUTOSAVE_PATH, PHONE, ThreadValues, checked_wrk, wrk_script
from bench.measure import Context, MeasurementError, RunOptions
from proof.accounts import PASSWORD, People
from proof.platform import Platform
from proof.report import Row

WRK_TIMEOUT_S = 30


@dataclass(frozen=True)
class Page:
    name: str
    path: str
    share: float  # of the clients
    kind: str = "public"  # public | login | therapist | client | autosave
    minimum: int = 1


# Shares of the clients; what a busy hour looks like more than what any page can take alone.
PAGES = (
    Page("home", "/", 0.20),
    Page("login-page", "/login", 0.075),
    Page("signup-page", "/signup", 0.075),
    Page("terms", "/terms", 0.05),
    Page("privacy", "/privacy", 0.05),
    # argon2id: each log-in keeps ~1.6 cores busy for ~0.2 s; 4 of them saturate 2 cores
    Page("login", "/login", 0.02, kind="login"),
    Page("therapist-dashboard", "/therapist", 0.14, kind="therapist"),
    Page("client-dashboard", "/client", 0.14, kind="client"),
    Page("autosave", AUTOSAVE_PATH, 0.25, kind="autosave"),
)


@dataclass(frozen=True)
class LoadOptions:
    clients: int
    seconds: int
    connections: dict[str, int]  # per page

    def describe(self) -> dict[str, object]:
        return {"clients": self.clients, "seconds": self.seconds,
                "connections": self.connections}


def options(clients: int, seconds: int) -> LoadOptions:
    counts = {page.name: max(page.minimum, round(clients * page.share)) for page in PAGES}
    counts["home"] += clients - sum(counts.values())  # the rounding's remainder
    return LoadOptions(clients, seconds, counts)


@dataclass(frozen=True)
class Result:
    page: Page
    connections: int
    wrk: WrkResult | None
    error: str | None = None


def run(platform: Platform, people: People, options: LoadOptions) -> list[Row]:
    ctx = Context({"app": platform.url}, platform.direct_env,
                  RunOptions(duration=options.seconds, warmup=0, rounds=1, connections=2,
                             wrk_threads=2), platform.workdir)
    _progress(f"load: logging in the people ({options.clients} clients over {len(PAGES)} "
              "pages)")
    plans = [(page, options.connections[page.name],
              _script(ctx, people, page, options.connections[page.name])) for page in PAGES]
    results: list[Result] = []
    lock = threading.Lock()

    def drive(page: Page, connections: int, script: Path, threads: int) -> None:
        try:
            result = Result(page, connections, checked_wrk(
                ctx, page.path, script, options.seconds, threads=threads,
                connections=connections, timeout=WRK_TIMEOUT_S))
        except Exception as error:  # the other pages still count
            result = Result(page, connections, None, f"{type(error).__name__}: {error}")
        with lock:
            results.append(result)

    _progress(f"load: {options.clients} clients for {options.seconds} s")
    runners = [threading.Thread(target=drive, args=(page, connections, script, threads))
               for page, connections, (script, threads) in plans]
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join()
    order = {page.name: number for number, page in enumerate(PAGES)}
    return [_row(result, options) for result in sorted(results,
                                                      key=lambda r: order[r.page.name])]


def _script(ctx: Context, people: People, page: Page, connections: int) -> tuple[Path, int]:
    """The Lua file for this page's wrk run, and its wrk threads (one per person, for pages
    where each thread plays one)."""
    if page.kind == "autosave":
        saves = _autosave_threads(ctx, people, connections)
        return wrk_script(ctx, f"proof-{page.name}", "autosave.lua", saves, status=200), \
            connections
    threads = min(2, connections)
    values: list[ThreadValues]
    if page.kind == "public":
        values = [{"method": "GET", "path": page.path, "headers": {}} for _ in range(threads)]
        return wrk_script(ctx, f"proof-{page.name}", "same_request.lua", values,
                          status=200), threads
    if page.kind == "login":
        threads = connections  # each its own anonymous cookie and token
        values = [_login_form(ctx, people.load.therapist.email) for _ in range(threads)]
        return wrk_script(ctx, f"proof-{page.name}", "same_request.lua", values, status=302,
                          location="/dashboard"), threads
    member = people.load.therapist if page.kind == "therapist" else people.load.client
    values = [{"method": "GET", "path": page.path,
               "headers": {"Cookie": _logged_in(ctx, member.email).cookie_header}}
              for _ in range(threads)]
    return wrk_script(ctx, f"proof-{page.name}", "same_request.lua", values, status=200), \
        threads


def _login_form(ctx: Context, email: str) -> ThreadValues:
    browser = Browser(ctx.urls["app"])
    form = {"email": email, "password": PASSWORD, "csrf_token": browser.csrf_token("/login")}
    return {"method": "POST", "path": "/login", "body": urlencode(form),
            "headers": {"Cookie": browser.cookie_header,
                        "Content-Type": "application/x-www-form-urlencoded"}}


def _logged_in(ctx: Context, email: str) -> Browser:
    browser = Browser(ctx.urls["app"])
    browser.log_in(email, PASSWORD)
    return browser


def _autosave_threads(ctx: Context, people: People, count: int) -> list[ThreadValues]:
    values: list[ThreadValues] = []
    for email in people.onboarding_for_load(count):
        browser = _logged_in(ctx, email)
        token = browser.api_csrf_token()
        snapshot = browser.request("GET", AUTOSAVE_PATH).json()
        version = snapshot.get("version")
        if not isinstance(version, int):
            raise MeasurementError(f"no onboarding version for {email}: {snapshot}")
        values.append({"path": AUTOSAVE_PATH, "phone": PHONE, "version": version,
                       "headers": {"Cookie": browser.cookie_header, "X-CSRFToken": token,
                                   "Content-Type": "application/json",
                                   "Accept": "application/json"}})
    if len(values) < count:
        raise MeasurementError(f"only {len(values)} clients mid-onboarding for {count} "
                               "auto-save connections")
    return values


def _row(result: Result, options: LoadOptions) -> Row:
    page = result.page
    what = (f"{result.connections} connection(s) on {page.path} "
            f"({'PUT' if page.kind == 'autosave' else 'POST' if page.kind == 'login' else 'GET'}"
            f"), {options.seconds} s, alongside the other pages")
    target = "0 5xx, every answer as expected, p99 reported"
    if result.wrk is None:
        return Row(f"load/{page.name}", what, f"wrk failed: {result.error}", target,
                   [f"wrk failed: {result.error}"])
    wrk = result.wrk
    unexpected = dict(wrk.unexpected or {})
    server_errors = sum(n for kind, n in unexpected.items() if kind.startswith("status_5"))
    others = {kind: n for kind, n in {**unexpected, **wrk.socket_errors}.items()
              if n and not kind.startswith("status_5")}
    p50, p99 = wrk.percentiles_ms.get(50.0), wrk.percentiles_ms.get(99.0)
    problems = []
    if server_errors:
        problems.append(f"{server_errors} 5xx: {unexpected}")
    if others:
        problems.append(f"unexpected answers or socket errors: {others}")
    return Row(f"load/{page.name}", what,
               f"{wrk.requests_per_second:,.0f} req/s, p50 {_ms(p50)}, p99 {_ms(p99)}, "
               f"5xx {server_errors}, other errors {sum(others.values())}",
               target, problems,
               {"connections": result.connections, "requests_per_second":
                wrk.requests_per_second, "p50_ms": p50, "p99_ms": p99, "http_5xx": server_errors,
                "other_errors": others})


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def _progress(message: str) -> None:
    print(f"proof: {message}", file=sys.stderr, flush=True)

