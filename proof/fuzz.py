"""fuzz: the JSON API against its own OpenAPI document, and every HTML form, over HTTP.

  api     schemathesis (`schemathesis run URL/api/openapi.json --checks all`, every phase it
          has: examples, coverage, fuzzing, and stateful along the document's links) as two
          logged-in people, a therapist and a client mid-onboarding, with the session cookie
          and the X-CSRFToken header. The event stream (it answers for 55 s) is checked by hand
          instead: status, media type, its first event, and its errors' JSON.
  forms   every <form> found by crawling every GET route as each role, submitted with
          hypothesis-generated values (any unicode, control characters, very long, e-mail- and
          SQL-like text) in every field, a fresh CSRF token each time. This is over HTTP, on
          the real server; tests/web/test_forms_fuzz.py does the same in-process for a fixed
          list of forms.

Targets: no 5xx, no answer that breaks the document (schema, status, media type, headers).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.servers import BIN, ROOT
from proof.accounts import PASSWORD, People
from proof.client import BEHIND_TLS_PROXY, SESSION_COOKIE, HeaderAudit, Visitor
from proof.platform import Platform
from proof.report import Row
from proof.routes import load
from proof.tenancy import STREAM, parameter_values

SCHEMA_CHECKS = {"response_schema_conformance", "status_code_conformance",
                 "content_type_conformance", "response_headers_conformance"}
SERVER_ERROR_CHECK = "not_a_server_error"
SCHEMATHESIS_TIMEOUT_S = 900


@dataclass(frozen=True)
class FuzzOptions:
    api_examples: int
    form_examples: int


FULL = FuzzOptions(api_examples=50, form_examples=30)
QUICK = FuzzOptions(api_examples=10, form_examples=5)


def run(platform: Platform, people: People, options: FuzzOptions, audit: HeaderAudit
        ) -> list[Row]:
    identities = {"therapist": people.amber.therapist.email,
                  "client mid-onboarding": people.onboarding_for_fuzz}
    api = [_schemathesis(platform, label, email, options.api_examples)
           for label, email in identities.items()]
    return [_api_row(api, _event_stream(platform, people, audit)),
            _forms(platform, people, options.form_examples, audit)]


# -- the API ------------------------------------------------------------------------------------
@dataclass
class ApiRun:
    label: str
    report: dict[str, Any]
    output: Path
    exit_code: int


def _schemathesis(platform: Platform, label: str, email: str, examples: int) -> ApiRun:
    visitor = Visitor(platform.url)
    visitor.log_in(email, PASSWORD)
    token = visitor.api_csrf_token()
    slug = label.split()[0]
    report = platform.workdir / f"schemathesis-{slug}.json"
    output = platform.workdir / f"schemathesis-{slug}.log"
    config = _auth_config(platform.workdir / f"schemathesis-{slug}.toml", visitor, token)
    command = [str(BIN / "schemathesis"), "--config-file", str(config), "run",
               f"{platform.url}/api/openapi.json",
               "--checks", "all", "--max-examples", str(examples), "--seed", "1",
               "--workers", "1", "--request-timeout", "20", "--exclude-path", STREAM,
               *[arg for name, value in BEHIND_TLS_PROXY.items()
                 for arg in ("-H", f"{name}: {value}")],
               "--report", "json", "--report-json-path", str(report), "--no-color"]
    _progress(f"fuzz: schemathesis as a {label}, {examples} examples per operation")
    with output.open("w") as log:
        done = subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                              timeout=SCHEMATHESIS_TIMEOUT_S, check=False)
    loaded = json.loads(report.read_text()) if report.exists() else {}
    return ApiRun(label, loaded, output, done.returncode)


def _auth_config(path: Path, visitor: Visitor, token: str) -> Path:
    """The session cookie and CSRF token as the document's security schemes: schemathesis then
    knows what authenticates, and leaves it out where it checks that auth is not ignored."""
    session = dict(part.split("=", 1) for part in visitor.cookie_header.split("; "))
    cookie = session.get(SESSION_COOKIE, "")
    path.write_text(f'[auth.openapi.session]\napi_key = "{cookie}"\n'
                    f'[auth.openapi.csrf]\napi_key = "{token}"\n')
    return path


@dataclass
class StreamCheck:
    checked: int = 0
    problems: list[str] = field(default_factory=list)


def _event_stream(platform: Platform, people: People, audit: HeaderAudit) -> StreamCheck:
    """The stream as the document describes it, for the cases schemathesis cannot wait for."""
    check = StreamCheck()
    visitor = Visitor(platform.url, audit)
    visitor.log_in(people.amber.therapist.email, PASSWORD)
    cases = [("logged in", visitor.cookie_header, STREAM, 200, "text/event-stream"),
             ("logged in, after=2026-01-01T00:00:00Z", visitor.cookie_header,
              f"{STREAM}?after=2026-01-01T00:00:00Z", 200, "text/event-stream"),
             ("a malformed after", visitor.cookie_header, f"{STREAM}?after=yesterday", 400,
              "application/json"),
             ("anonymous", "", STREAM, 401, "application/json")]
    server = urlsplit(platform.url)
    for name, cookie, path, status, media in cases:
        connection = http.client.HTTPConnection(server.hostname or "127.0.0.1", server.port,
                                                timeout=5)
        headers = {**BEHIND_TLS_PROXY, **({"Cookie": cookie} if cookie else {})}
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            audit.observe("GET", path, response.status, response.headers)
            first = response.read1(4096).decode(errors="replace")
        finally:
            connection.close()
        check.checked += 1
        got = response.getheader("Content-Type", "")
        if response.status != status or not got.startswith(media):
            check.problems.append(f"GET {path} ({name}): expected {status} {media}, got "
                                  f"{response.status} {got}")
        elif status == 200 and not first.startswith("retry:"):
            check.problems.append(f"GET {path} ({name}): first bytes {first[:80]!r}, expected "
                                  "a retry: line")
        elif status != 200 and '"error"' not in first:
            check.problems.append(f"GET {path} ({name}): {status} without an error object: "
                                  f"{first[:200]!r}")
    return check


def _api_row(runs: list[ApiRun], stream: StreamCheck) -> Row:
    server_errors, schema, other = Counter[str](), Counter[str](), Counter[str]()
    details: list[str] = []
    cases = 0
    problems = []
    for run in runs:
        report = run.report
        if not report:
            problems.append(f"schemathesis ({run.label}) wrote no report (exit {run.exit_code})"
                            f"; see {run.output.name} in the logs")
            continue
        cases += int(report.get("test_cases", {}).get("generated", 0))
        for failure in report.get("failures", []):
            kind = str(failure.get("type") or failure.get("code"))
            where = f"{run.label}: {failure.get('title')} on {failure.get('operations')}"
            bucket = (server_errors if kind == SERVER_ERROR_CHECK else schema
                      if kind in SCHEMA_CHECKS else other)
            bucket[kind] += int(failure.get("count", 1))
            details.append(f"{where} ({kind}, {failure.get('count')})")
        for error in report.get("errors", []):
            problems.append(f"schemathesis ({run.label}) error: {error}")
    if server_errors:
        problems.append(f"5xx: {[d for d in details if SERVER_ERROR_CHECK in d]}")
    if schema:
        problems.append(f"answers the document does not describe: "
                        f"{[d for d in details if any(c in d for c in SCHEMA_CHECKS)]}")
    problems.extend(stream.problems)
    others = [d for d in details if not any(c in d for c in (*SCHEMA_CHECKS,
                                                            SERVER_ERROR_CHECK))]
    return Row(
        "fuzz/api", f"schemathesis --checks all as {' and as '.join(r.label for r in runs)}; "
        f"the event stream by hand ({stream.checked} cases)",
        f"{cases:,} test cases, 5xx {sum(server_errors.values())}, schema violations "
        f"{sum(schema.values())}, other checks failed {sum(other.values())} "
        f"({dict(other) or 0}), stream problems {len(stream.problems)}",
        "0 5xx, 0 schema violations (other checks reported)", problems,
        {"test_cases": cases, "http_5xx": dict(server_errors), "schema": dict(schema),
         "other_checks": dict(other), "other_check_details": others,
         "stream_problems": stream.problems, "logs": [r.output.name for r in runs]})


# -- the forms ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Form:
    page: str
    action: str
    method: str
    fields: tuple[tuple[str, str, str], ...]  # (name, kind, value): kind hidden|text|choice
    choices: tuple[tuple[str, tuple[str, ...]], ...]  # (name, values) of selects and buttons

    @property
    def key(self) -> tuple[str, str, tuple[str, ...]]:
        return (self.action, self.method, tuple(sorted(n for n, _k, _v in self.fields)))


class _FormParser(HTMLParser):
    def __init__(self, page: str) -> None:
        super().__init__()
        self.page = page
        self.forms: list[Form] = []
        self._current: dict[str, object] | None = None
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._current = {"action": urljoin(self.page, a.get("action") or self.page),
                             "method": (a.get("method") or "get").upper(), "fields": [],
                             "choices": {}}
            return
        if self._current is None or not a.get("name"):
            if tag == "option" and self._select and self._current is not None:
                self._choices().setdefault(self._select, []).append(a.get("value", ""))
            return
        name = a["name"]
        fields: list[tuple[str, str, str]] = self._current["fields"]  # type: ignore[assignment]
        if tag == "input":
            kind = a.get("type", "text").lower()
            if kind == "hidden":
                fields.append((name, "hidden", a.get("value", "")))
            elif kind in ("checkbox", "radio"):
                self._choices().setdefault(name, []).extend([a.get("value", "on"), ""])
            elif kind not in ("submit", "button", "image", "reset"):
                fields.append((name, "text", ""))
        elif tag == "textarea":
            fields.append((name, "text", ""))
        elif tag == "select":
            self._select = name
        elif tag == "button":
            self._choices().setdefault(name, []).append(a.get("value", ""))

    def _choices(self) -> dict[str, list[str]]:
        assert self._current is not None
        return self._current["choices"]  # type: ignore[return-value]

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        if tag == "form" and self._current is not None:
            current, self._current = self._current, None
            choices = {n: tuple(dict.fromkeys(v)) for n, v in self._choices_of(current).items()}
            fields: list[tuple[str, str, str]] = current["fields"]  # type: ignore[assignment]
            self.forms.append(Form(self.page, urlsplit(str(current["action"])).path,
                                   str(current["method"]), tuple(fields),
                                   tuple(choices.items())))

    @staticmethod
    def _choices_of(current: dict[str, object]) -> dict[str, list[str]]:
        return current["choices"]  # type: ignore[return-value]


# Text people (and attackers) type: any unicode incl. control characters and NUL, empty, very
# long, e-mail- and SQL-ish (as tests/web/test_forms_fuzz.py).
TEXT = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=200, max_size=3000),
    st.from_regex(r"[a-zA-Z0-9._%+-]{1,30}@[a-z0-9-]{1,20}\.[a-z]{2,6}", fullmatch=True),
    st.sampled_from(["", " ", "\x00", "' OR 1=1 --", "<script>alert(1)</script>",
                     "a" * 10_000, "ü" * 129, "\r\nSet-Cookie: x=1", "-1", "99999999999999"]),
)


@dataclass
class FormRole:
    role: str
    email: str | None  # None: anonymous


def _forms(platform: Platform, people: People, examples: int, audit: HeaderAudit) -> Row:
    roles = [FormRole("anonymous", None), FormRole("therapist", people.forms.therapist.email),
             FormRole("client", people.forms.client.email),
             FormRole("client mid-onboarding", people.onboarding_for_fuzz),
             FormRole("admin", people.admin_email)]
    routes = [r for r in load() if "GET" in r.methods and r.rule != STREAM
              and "filename" not in r.arguments]
    found: dict[tuple[str, tuple[str, str, tuple[str, ...]]], tuple[FormRole, Form]] = {}
    for role in roles:
        visitor = _visitor(platform, role, audit)
        for route in routes:
            for values in parameter_values(route, people.forms):
                page = route.path(values)
                reply = visitor.request("GET", page)
                if reply.status != 200 or "<form" not in reply.text:
                    continue
                parser = _FormParser(page)
                parser.feed(reply.text)
                for form in parser.forms:
                    found.setdefault((role.role, form.key), (role, form))
    _progress(f"fuzz: {len(found)} forms (by role), {examples} examples each")
    submitted, failures = 0, []
    for role, form in found.values():
        count, failure = _fuzz_form(platform, role, form, examples, audit)
        submitted += count
        if failure:
            failures.append(failure)
    forms = sorted({f"{role.role}: {form.method} {form.action}" for role, form in found.values()})
    return Row(
        "fuzz/forms", f"hypothesis over every HTML form found by crawling as {len(roles)} roles"
        f" ({examples} examples each, over HTTP)",
        f"{len(found)} forms, {submitted:,} submissions, 5xx {len(failures)}",
        "0 5xx", [f"5xx: {failure}" for failure in failures],
        {"forms": forms, "submissions": submitted, "failures": failures})


def _visitor(platform: Platform, role: FormRole, audit: HeaderAudit) -> Visitor:
    visitor = Visitor(platform.url, audit)
    if role.email is not None:
        visitor.log_in(role.email, PASSWORD)
    return visitor


def _fuzz_form(platform: Platform, role: FormRole, form: Form, examples: int,
               audit: HeaderAudit) -> tuple[int, str | None]:
    visitor = _visitor(platform, role, audit)
    texts = {name: TEXT for name, kind, _v in form.fields if kind == "text"}
    choices = {name: st.sampled_from(values) | TEXT for name, values in form.choices}
    hidden = {name: value for name, kind, value in form.fields if kind == "hidden"}
    sent = 0
    failure: list[str] = []

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.fixed_dictionaries({**texts, **choices}))
    def submit(values: dict[str, str]) -> None:
        nonlocal visitor, sent
        if role.email is not None and _logged_out(visitor):
            visitor = _visitor(platform, role, audit)  # a fuzzed log-out or password change
        token = visitor.api_csrf_token()
        fields = {**hidden, **values, "csrf_token": token}
        reply = visitor.request(form.method, form.action,
                                body=urlencode(fields, doseq=True),
                                headers={"Content-Type": "application/x-www-form-urlencoded"})
        sent += 1
        if reply.status >= 500:
            failure[:] = [f"{role.role}: {form.method} {form.action} with "
                          f"{ {k: v[:80] for k, v in values.items()} } -> {reply.status}"]
            raise AssertionError(failure[0])

    started = time.monotonic()
    # On a 5xx hypothesis shrinks the example and raises: `failure` holds the smallest one.
    with contextlib.suppress(AssertionError):
        submit()
    _progress(f"fuzz: {role.role} {form.method} {form.action}: {sent} in "
              f"{time.monotonic() - started:.0f} s{' !! 5xx' if failure else ''}")
    return sent, failure[0] if failure else None


def _logged_out(visitor: Visitor) -> bool:
    """Logged out, or held at a gate (a fuzzed practice policy asks for a second factor)."""
    return not visitor.logged_in()


def _progress(message: str) -> None:
    print(f"proof: {message}", file=sys.stderr, flush=True)
