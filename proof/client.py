"""A person's browser as the proof drives it: bench's cookie-keeping browser, arriving through a
TLS-terminating proxy (X-Forwarded-Proto: https), with every answer shown to the header audit."""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.client import HTTPMessage
from urllib.parse import urlencode

from bench.browser import Browser, Reply
from bench.measure import MeasurementError
from proof.second_factor import APPS

BEHIND_TLS_PROXY = {"X-Forwarded-Proto": "https"}
CHALLENGE = "/login/second-factor"
SECOND_FACTOR = "/account/second-factor"
_TOTP_SECRET = re.compile(r'id="totp-secret"[^>]*>([A-Z2-7]+)<')
_TAGS = re.compile(r"<[^>]+>|\s+")


def _text_of(html: str) -> str:
    return _TAGS.sub(" ", html)
_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
_CSRF_FIELD = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')

YEAR_S = 365 * 24 * 3600


def _csp_ok(value: str) -> bool:
    return all(rule in value for rule in ("default-src 'self'", "frame-ancestors 'none'",
                                          "object-src 'none'", "base-uri 'none'"))


def _hsts_ok(value: str) -> bool:
    match = re.search(r"max-age=(\d+)", value)
    return match is not None and int(match.group(1)) >= YEAR_S


# What every answer must carry, whatever its route and status (web.security: Talisman).
REQUIRED_HEADERS: dict[str, Callable[[str], bool]] = {
    "Content-Security-Policy": _csp_ok,
    "Strict-Transport-Security": _hsts_ok,
    "X-Content-Type-Options": lambda value: value == "nosniff",
    "X-Frame-Options": lambda value: value in ("DENY", "SAMEORIGIN"),
    "Referrer-Policy": lambda value: value in ("no-referrer", "same-origin", "strict-origin",
                                               "strict-origin-when-cross-origin"),
}
SESSION_COOKIE = "__Host-session"


@dataclass
class HeaderAudit:
    """Checks the security headers of every answer the proof's browsers get."""

    responses: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    paths: set[str] = field(default_factory=set)
    # (header, status, method, path) -> what was found; the first few of each kind
    problems: dict[tuple[str, int, str, str], str] = field(default_factory=dict)
    missing: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def observe(self, method: str, path: str, status: int, headers: HTTPMessage) -> None:
        found = []
        for name, acceptable in REQUIRED_HEADERS.items():
            value = headers.get(name)
            if value is None or not acceptable(value):
                found.append((name, value or "(absent)"))
        found.extend(_cookie_problems(headers))
        with self._lock:
            self.responses += 1
            self.statuses[status] += 1
            self.paths.add(path.split("?")[0])
            for name, value in found:
                self.missing[name] += 1
                key = (name, status, method, path.split("?")[0][:120])
                if len(self.problems) < 200:
                    self.problems.setdefault(key, value[:200])


def _cookie_problems(headers: HTTPMessage) -> list[tuple[str, str]]:
    problems = []
    for cookie in headers.get_all("Set-Cookie") or []:
        name = cookie.split("=", 1)[0].strip()
        flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
        if name == SESSION_COOKIE and not {"secure", "httponly", "samesite"} <= flags:
            problems.append(("Set-Cookie flags", cookie.split(";", 1)[-1].strip()))
        elif name != SESSION_COOKIE:
            problems.append(("Set-Cookie name", name))
    return problems


class Visitor(Browser):
    """bench.browser.Browser through the TLS proxy; every answer goes to `audit`."""

    def __init__(self, base_url: str, audit: HeaderAudit | None = None, *,
                 timeout: float = 30.0) -> None:
        super().__init__(base_url, headers=BEHIND_TLS_PROXY, timeout=timeout)
        self.base_url = base_url
        self.audit = audit

    def request(self, method: str, path: str, *, body: str | None = None,
                headers: Mapping[str, str] | None = None) -> Reply:
        reply = super().request(method, path, body=body, headers=headers)
        if self.audit is not None and reply.headers is not None:
            self.audit.observe(method, path, reply.status, reply.headers)
        return reply

    def log_in(self, email: str, password: str) -> None:
        """As a person does, second factor included: someone with an authenticator app (the
        admin, or anyone a practice's policy made set one up) answers its challenge, or borrows
        the session an earlier visitor logged in with, if it still holds; someone asked to set
        one up first does so."""
        lent = APPS.lend(email)
        if lent is not None:
            self.use_cookies(lent)
            if self.logged_in():
                return
            self.use_cookies({})
        reply = self._password(email, password)
        if reply.location.endswith("/dashboard"):
            return
        if reply.location.endswith(SECOND_FACTOR):  # production, or a fuzzed practice policy
            self._enrol_app(email)
            return
        if CHALLENGE not in reply.location or not APPS.has(email):
            raise MeasurementError(f"logging in {email} answered {reply.status} "
                                   f"{reply.location or reply.text[:200]}")
        answered = self.post_form(CHALLENGE, {"code": APPS.fresh_code(email)},
                                  token=self.page_token(CHALLENGE))
        if answered.status != 302 or not answered.location.endswith("/dashboard"):
            raise MeasurementError(f"{email}'s second factor answered {answered.status} "
                                   f"{answered.location or answered.text[:200]}")
        APPS.keep(email, self.cookies)

    def enrol_authenticator_app(self, email: str, password: str) -> None:
        """Log in as someone production sends to set up a second factor first, and set up an
        authenticator app from the secret the page shows."""
        reply = self._password(email, password)
        if not reply.location.endswith(SECOND_FACTOR):
            raise MeasurementError(f"{email} was not asked to set up a second factor "
                                   f"({reply.status} {reply.location})")
        self._enrol_app(email)

    def _enrol_app(self, email: str) -> None:
        started = self.post_form(SECOND_FACTOR + "/app", {}, token=self.page_token(SECOND_FACTOR))
        page = self.request("GET", SECOND_FACTOR + "/app/confirm")
        found = _TOTP_SECRET.search(page.text)
        if started.status != 302 or found is None:
            raise MeasurementError(f"setting up {email}'s app: {started.status}, "
                                   f"confirm page {page.status}")
        APPS.enrolled(email, found.group(1), step=-1)
        code, step = APPS.now_code(email)
        done = self.post_form(SECOND_FACTOR + "/app/confirm", {"code": code},
                              token=self.page_token(SECOND_FACTOR + "/app/confirm"))
        if done.status != 200 or "recovery" not in done.text.lower():
            raise MeasurementError(f"confirming {email}'s app answered {done.status}: "
                                   f"{_text_of(done.text)[:300]}")
        APPS.enrolled(email, found.group(1), step=step)
        APPS.keep(email, self.cookies)

    def logged_in(self) -> bool:
        """Past every gate: the dashboard answers, or sends the person to their own one."""
        reply = self.request("GET", "/dashboard")
        return reply.status == 200 or (reply.status == 302 and not any(
            gate in reply.location for gate in ("/login", SECOND_FACTOR)))

    def _password(self, email: str, password: str) -> Reply:
        reply = self.post_form("/login", {"email": email, "password": password})
        if reply.status != 302:
            raise MeasurementError(f"logging in {email} answered {reply.status}")
        return reply

    def page_token(self, path: str = "/login") -> str:
        """The CSRF token of a page (its meta tag, else its form's hidden field)."""
        reply = self.request("GET", path)
        match = _CSRF_META.search(reply.text) or _CSRF_FIELD.search(reply.text)
        if match is None:
            raise MeasurementError(f"no CSRF token on GET {path} ({reply.status})")
        return match.group(1)

    def post_form(self, path: str, form: Mapping[str, str | list[str]], *,
                  token: str | None = None) -> Reply:
        fields = {"csrf_token": token if token is not None else self.page_token(), **form}
        return self.request("POST", path, body=urlencode(fields, doseq=True),
                            headers={"Content-Type": "application/x-www-form-urlencoded"})

    def send_json(self, method: str, path: str, value: object, token: str) -> Reply:
        return self.request(method, path, body=json.dumps(value), headers={
            "Content-Type": "application/json", "Accept": "application/json",
            "X-CSRFToken": token})
