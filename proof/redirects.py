"""redirects: open-redirect payloads on every next-like parameter of every route, anonymous and
logged in, and in the log-in form's `next`; every Location is resolved as a browser resolves it
(the WHATWG URL parser, ada-url) and must stay on this site.

headers: the security headers of every answer the probes' browsers received (proof.client),
after a few requests that draw the statuses the other probes rarely see (404, 405, 413, 400,
401, 409, 422).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

import ada_url

from proof.accounts import PASSWORD, People
from proof.client import HeaderAudit, Visitor
from proof.platform import Platform
from proof.report import Row
from proof.routes import load
from proof.tenancy import STREAM, parameter_values

NEXT_LIKE = ("next", "return_to", "returnTo", "redirect", "redirect_to", "redirect_uri", "url",
             "continue", "dest", "destination", "back", "goto", "target", "r")
PAYLOADS = (
    "//evil.example", "///evil.example", "////evil.example", "/\\evil.example",
    "\\\\evil.example", "/\\/evil.example", "/\t/evil.example", "/\n/evil.example",
    "/\r\n/evil.example", " //evil.example", "\t//evil.example", "\x00//evil.example",
    "https://evil.example/", "http://evil.example", "https:evil.example", "http:/\\evil.example",
    "https:/\\/evil.example", "//evil.example@127.0.0.1", "//127.0.0.1@evil.example",
    "javascript:alert(1)", "JaVaScRiPt:alert(1)", "data:text/html,<script>alert(1)</script>",
    "evil.example", "/%2F%2Fevil.example", "%2F%2Fevil.example", "//%65vil.example",
    "/.//evil.example", "/..//evil.example", "//evil.example/%2e%2e",
    "\u3000//evil.example", "\uff0f\uff0fevil.example",
)


@dataclass
class Findings:
    requests: int = 0
    redirects: int = 0
    open: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)
    parameters: set[str] = field(default_factory=set)


def leaves_site(location: str, base: str) -> bool:
    """Whether a browser at `base` following this Location would leave the site (another host,
    or a scheme that runs or shows something else)."""
    try:
        target = ada_url.URL(location, base)
    except ValueError:
        return False  # a browser cannot follow it either
    here = ada_url.URL(base)
    return target.protocol not in ("http:", "https:") or target.host != here.host


def run(platform: Platform, people: People, audit: HeaderAudit, *, every_parameter: bool = True
        ) -> list[Row]:
    routes = [route for route in load() if "GET" in route.methods and route.rule != STREAM
              and "filename" not in route.arguments]
    anonymous = Visitor(platform.url, audit)
    therapist = Visitor(platform.url, audit)
    therapist.log_in(people.amber.therapist.email, PASSWORD)
    base = "https://" + (urlsplit(platform.url).netloc) + "/"
    findings = Findings()
    for visitor, role in ((anonymous, "anonymous"), (therapist, "therapist")):
        for route in routes:
            for values in parameter_values(route, people.amber):
                _route(findings, visitor, role, route.path(values), base, every_parameter)
    _login_form(findings, platform, people, audit, base)
    return [_row(findings, len(routes)), *_extra_statuses(platform, people, audit)]


def _route(findings: Findings, visitor: Visitor, role: str, path: str, base: str,
           every_parameter: bool) -> None:
    plain = visitor.request("GET", path)
    # Every name on a route that redirects anyway; elsewhere `next`, the one the site uses.
    names = NEXT_LIKE if every_parameter and 300 <= plain.status < 400 else ("next",)
    for name in names:
        findings.parameters.add(name)
        for payload in PAYLOADS:
            query = urlencode({name: payload})
            reply = visitor.request("GET", f"{path}?{query}")
            _judge(findings, f"{role}: GET {path}?{name}={payload!r}", reply.status,
                   reply.location, base)


def _login_form(findings: Findings, platform: Platform, people: People, audit: HeaderAudit,
                base: str) -> None:
    """The log-in form's hidden `next`, posted with the right password."""
    findings.parameters.add("next (log-in form)")
    for payload in PAYLOADS:
        visitor = Visitor(platform.url, audit)
        reply = visitor.post_form("/login", {"email": people.amber.client.email,
                                             "password": PASSWORD, "next": payload})
        _judge(findings, f"POST /login next={payload!r}", reply.status, reply.location, base)


def _judge(findings: Findings, request: str, status: int, location: str, base: str) -> None:
    findings.requests += 1
    if status >= 500:
        findings.server_errors.append(f"{request} -> {status}")
    if 300 <= status < 400:
        findings.redirects += 1
        if leaves_site(location, base):
            findings.open.append(f"{request} -> {status} Location: {location!r}")


def _row(findings: Findings, routes: int) -> Row:
    problems = []
    if findings.open:
        problems.append(f"{len(findings.open)} open redirect(s): {findings.open[:5]}")
    if findings.server_errors:
        problems.append(f"{len(findings.server_errors)} 5xx: {findings.server_errors[:5]}")
    return Row(
        "redirects", f"{len(PAYLOADS)} payloads x {len(findings.parameters)} next-like "
        f"parameters on {routes} GET routes (anonymous and logged in) and the log-in form",
        f"{findings.requests:,} requests, {findings.redirects:,} redirects, "
        f"{len(findings.open)} open, 5xx {len(findings.server_errors)}",
        "0 open redirects, 0 5xx", problems,
        {"requests": findings.requests, "redirects": findings.redirects,
         "open_redirects": findings.open, "http_5xx": findings.server_errors,
         "parameters": sorted(findings.parameters)})


def _extra_statuses(platform: Platform, people: People, audit: HeaderAudit) -> list[Row]:
    """Answers of statuses the other probes rarely draw, for the header audit to see."""
    anonymous = Visitor(platform.url, audit)
    anonymous.request("GET", "/no-such-page")  # 404
    anonymous.request("POST", "/terms")  # 405
    anonymous.request("GET", "/?q=%00")  # 400
    anonymous.request("GET", "/api/notifications")  # 401
    anonymous.request("POST", "/login", body="x" * (1024 * 1024 + 1),
                      headers={"Content-Type": "application/x-www-form-urlencoded"})  # 413
    client = Visitor(platform.url, audit)
    client.log_in(people.onboarding_for_fuzz, PASSWORD)
    token = client.api_csrf_token()
    progress = "/api/onboarding/progress"
    client.send_json("PUT", progress, {"stage": "PERSONAL_INFO", "data": {}, "version": -1},
                     token)  # 409
    client.send_json("PUT", progress, {"stage": "nowhere"}, token)  # 422
    return []


def headers_row(audit: HeaderAudit) -> Row:
    statuses = dict(sorted(audit.statuses.items()))
    problems = [f"{name} {value!r} on {status} {method} {path}"
                for (name, status, method, path), value in list(audit.problems.items())[:10]]
    if audit.problems:
        problems = [f"{sum(audit.missing.values())} answer(s) lacked a header or flag "
                    f"({dict(audit.missing)}), e.g. {problems}"]
    return Row(
        "headers", "CSP (default-src, frame-ancestors, object-src, base-uri), HSTS >= 1 year, "
        "nosniff, X-Frame-Options, Referrer-Policy, session cookie Secure/HttpOnly/SameSite on "
        "every answer the probes received",
        f"{audit.responses:,} answers on {len(audit.paths):,} paths, statuses {statuses}, "
        f"lacking {sum(audit.missing.values())}",
        "every header on every answer", problems,
        {"responses": audit.responses, "statuses": statuses, "missing": dict(audit.missing),
         "problems": [f"{k}: {v}" for k, v in list(audit.problems.items())[:50]]})

